"""CK+ as one folder per emotion (the CK+48 layout, e.g. anger/S010_004_00000017.png).

Splits are subject-independent k folds: `fold` is the test split, the other folds are train.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge_fer.data.base import Adapter, Split, register_dataset, require_nonempty, stat_fingerprint, typed_option
from edge_fer.data.images import decode_images, list_images
from edge_fer.errors import DataError

CLASSES = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
FOLDER_NAMES = {name: name for name in CLASSES} | {"happy": "happiness", "sad": "sadness", "angry": "anger"}
SUBJECT = re.compile(r"^(S\d+)_")


def subject_of(path: Path) -> str:
    match = SUBJECT.match(path.name)
    if not match:
        raise DataError("file name must start with a subject ID like S010_", path)
    return match.group(1)


def subject_folds(subjects: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per image; every subject lands in exactly one fold, and folds are balanced by image count
    (largest subjects first, each to the currently smallest fold; ties broken by a seeded shuffle)."""
    unique, counts = np.unique(subjects, return_counts=True)
    if len(unique) < folds:
        raise DataError(f"{folds} folds need at least {folds} subjects, found {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    order = order[np.argsort(-counts[order], kind="stable")]
    fold_sizes = np.zeros(folds, np.int64)
    fold_of_subject = {}
    for index in order:
        target = int(np.argmin(fold_sizes))
        fold_of_subject[unique[index]] = target
        fold_sizes[target] += counts[index]
    return np.asarray([fold_of_subject[s] for s in subjects], np.int64)


@register_dataset
class CkPlus(Adapter):
    name = "ckplus"
    classes = CLASSES

    def check_options(self, options: dict) -> dict:
        unknown = set(options) - {"folds", "fold", "seed"}
        if unknown:
            raise DataError(f"ckplus takes the options folds, fold and seed, got {', '.join(sorted(unknown))}")
        folds = typed_option(self.name, options, "folds", 10, int, 2, 100)
        fold = typed_option(self.name, options, "fold", 0, int, 0, 99)
        if folds < 2 or not 0 <= fold < folds:
            raise DataError(f"fold must be in 0..{folds - 1} and folds at least 2, got fold={fold} folds={folds}")
        return {"folds": folds, "fold": fold, "seed": typed_option(self.name, options, "seed", 0, int, 0, 2**31 - 1)}

    def fingerprint(self) -> list:
        return stat_fingerprint(self.root, *sorted(p for p in self.root.iterdir() if p.is_dir()))

    def read(self) -> dict[str, Split]:
        paths, labels = [], []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if folder.name.lower() not in FOLDER_NAMES:
                raise DataError(f"folder name is not a known class (expected one of {', '.join(FOLDER_NAMES)})", folder)
            label = CLASSES.index(FOLDER_NAMES[folder.name.lower()])
            images = list_images(folder)
            paths += images
            labels += [label] * len(images)
        if not paths:
            raise DataError("no images found; expected one folder per emotion (anger/, happy/, ...)", self.root)
        subjects = np.asarray([subject_of(p) for p in paths])
        everything = Split(
            images=decode_images(paths, 1, self.image_size, "decoding CK+"),
            labels=np.asarray(labels, np.int64),
            files=np.asarray([str(p.relative_to(self.root)) for p in paths]),
            subjects=subjects,
        )
        fold_of = subject_folds(subjects, self.options["folds"], self.options["seed"])
        test = fold_of == self.options["fold"]
        return require_nonempty({"train": everything.subset(~test), "test": everything.subset(test)}, self.root)
