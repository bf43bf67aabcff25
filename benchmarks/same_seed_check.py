"""Train the quickstart's model twice with the same seed, in separate processes, and compare every weight.

    python benchmarks/same_seed_check.py [--pipeline pipelines/quickstart.toml] [--out benchmarks/same-seed.json]

Each training is `edge-fer run PIPELINE --only data,train` into its own run folder (runs/<name>-seed-a, -seed-b);
the result is the largest absolute weight difference and whether every weight is bit-identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def train_once(pipeline: Path, name: str) -> tuple[Path, float]:
    started = time.perf_counter()
    command = ["edge-fer", "run", str(pipeline), "--set", f"name={name}", "--set", 'stages=["data","train"]']
    subprocess.run(command, check=True)
    return Path("runs") / name / "train", time.perf_counter() - started


def weights_of(folder: Path) -> list[np.ndarray]:
    from edge_fer.models.loading import load_model

    model, _ = load_model(folder)
    return model.get_weights()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=Path("pipelines/quickstart.toml"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/same-seed.json"))
    args = parser.parse_args(argv)
    stem = args.pipeline.stem
    runs = [train_once(args.pipeline, f"{stem}-seed-{letter}") for letter in "ab"]
    first, second = (weights_of(folder) for folder, _ in runs)
    largest = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(first, second))
    identical = all(np.array_equal(a, b) for a, b in zip(first, second))
    accuracies = [json.loads((folder / "model.json").read_text())["metrics"]["test"]["accuracy"] for folder, _ in runs]
    result = {"pipeline": str(args.pipeline), "tensors": len(first), "identical": identical,
              "max_abs_difference": largest, "test_accuracy": accuracies,
              "train_seconds": [round(seconds, 1) for _, seconds in runs]}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
