"""Train the quickstart's model twice with the same seed, in separate processes, and compare every weight; with
--qat, also run QAT on each and compare the QAT weights (fake-quantization ranges included).

    python benchmarks/same_seed_check.py [--pipeline pipelines/quickstart.toml] [--qat] [--out benchmarks/same-seed.json]

Each run is `edge-fer run PIPELINE` with stages data,train(,qat) into its own run folder (runs/<name>-seed-a,
-seed-b; a stage already done there is reused); the result is the largest absolute weight difference and whether
every weight is bit-identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge_fer.errors import run_script


def train_once(pipeline: Path, name: str, stages: list[str]) -> tuple[Path, float]:
    started = time.perf_counter()
    command = ["edge-fer", "run", str(pipeline), "--set", f"name={name}", "--set", f"stages={json.dumps(stages)}"]
    subprocess.run(command, check=True)
    return Path("runs") / name, time.perf_counter() - started


def compare(first: list[np.ndarray], second: list[np.ndarray]) -> dict:
    largest = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(first, second))
    return {"tensors": len(first), "identical": all(np.array_equal(a, b) for a, b in zip(first, second)),
            "max_abs_difference": largest}


def qat_weights_of(folder: Path) -> list[np.ndarray]:
    from edge_fer.quantize.qat import load_qat_model

    model, _ = load_qat_model(folder)
    return model.get_weights()


def weights_of(folder: Path) -> list[np.ndarray]:
    from edge_fer.models.loading import load_model

    model, _ = load_model(folder)
    return model.get_weights()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=Path("pipelines/quickstart.toml"))
    parser.add_argument("--qat", action="store_true", help="also run QAT on both and compare the QAT weights")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/same-seed.json"))
    args = parser.parse_args(argv)
    stem = args.pipeline.stem
    stages = ["data", "train", "qat"] if args.qat else ["data", "train"]
    runs = [train_once(args.pipeline, f"{stem}-seed-{letter}", stages) for letter in "ab"]
    trained = compare(*(weights_of(folder / "train") for folder, _ in runs))
    accuracies = [json.loads((folder / "train" / "model.json").read_text())["metrics"]["test"]["accuracy"] for folder, _ in runs]
    result = {"pipeline": str(args.pipeline), **trained, "test_accuracy": accuracies,
              "seconds": [round(seconds, 1) for _, seconds in runs]}
    if args.qat:
        qat = compare(*(qat_weights_of(folder / "qat") for folder, _ in runs))
        qat["test_accuracy"] = [json.loads((folder / "qat" / "model.json").read_text())["metrics"]["test"]["accuracy"]
                                for folder, _ in runs]
        result["qat"] = qat
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["identical"] and result.get("qat", {"identical": True})["identical"] else 1


if __name__ == "__main__":
    sys.exit(run_script(main))
