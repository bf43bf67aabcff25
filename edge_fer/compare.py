"""The comparator: the same inputs go to every runtime; agreement is reported against a reference."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge_fer.runtimes.base import Runner


@dataclass
class Agreement:
    name: str
    count: int
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float

    def as_dict(self) -> dict:
        return asdict(self)


def run_batches(runner: Runner, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Probabilities for float32 model inputs, in batches no larger than the runner takes."""
    limit = runner.input_spec.max_batch or batch_size
    step = max(1, min(batch_size, limit))
    return np.concatenate([runner.infer(images[i:i + step]) for i in range(0, len(images), step)])


def agreement(name: str, reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    difference = np.abs(reference - candidate)
    return Agreement(name, len(reference), float(np.mean(reference.argmax(1) == candidate.argmax(1))),
                     float(difference.max()), float(difference.mean()))


def compare(reference: Runner, candidates: dict[str, Runner], images: np.ndarray, batch_size: int = 32) -> list[Agreement]:
    """Load each runner, feed it `images`, and compare its probabilities with the reference's."""
    with reference:
        expected = run_batches(reference, images, batch_size)
    results = []
    for name, runner in candidates.items():
        with runner:
            results.append(agreement(name, expected, run_batches(runner, images, batch_size)))
    return results
