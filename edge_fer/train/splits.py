"""The splits a training uses: the validation split held out of train where a dataset has none, the test split it
is scored on, and the class weights of an imbalanced train split."""

from __future__ import annotations

import numpy as np

from edge_fer.data import FerDataset, load_dataset
from edge_fer.data.base import Split
from edge_fer.errors import UserError


def balanced_class_weights(labels: np.ndarray, num_classes: int, power: float = 1.0) -> dict[int, float]:
    """(n / (k · count_c)) ** power: power 1 is the usual 'balanced' weighting, 0.5 a gentler one.
    Classes absent from training get weight 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = (counts.sum() / (present.sum() * counts[present])) ** power
    return {i: float(w) for i, w in enumerate(weights)}


def stratified_holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    rng = np.random.default_rng(seed)
    held = np.zeros(len(split), bool)
    for label in np.unique(split.labels):
        members = np.flatnonzero(split.labels == label)
        take = int(round(len(members) * fraction))
        held[rng.choice(members, size=take, replace=False)] = True
    return split.subset(~held), split.subset(held)


def train_valid_test(dataset: FerDataset, validation_fraction: float, seed: int) -> tuple[Split, Split, Split | None]:
    train = dataset.splits.get("train")
    if train is None:
        raise UserError(f"dataset {dataset.name} has no 'train' split (it has {', '.join(dataset.splits)})")
    valid = dataset.splits.get("valid")
    if valid is None:
        train, valid = stratified_holdout(train, validation_fraction, seed)
    return train, valid, dataset.splits.get("test")


def scoring_test_split(data, dataset: FerDataset, test_split: Split | None) -> Split | None:
    """The test split in the label mode models are scored on (FERPlus vote distributions score on majority)."""
    from edge_fer.data import get_adapter

    scored = get_adapter(dataset.name).scoring_mode(dataset.label_mode)
    if test_split is None or scored == dataset.label_mode:
        return test_split
    return load_dataset(data.dataset, data.root, label_mode=scored, **data.options).splits.get("test")
