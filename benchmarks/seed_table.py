"""How far apart seeds of one training land: each run folder's float and int8 test accuracies (its evaluate.json,
FERPlus majority test set) and its validation accuracy (model.json), then the mean and the spread over the seeds.

    python benchmarks/seed_table.py benchmarks/ferplus/vote-104-ft benchmarks/ferplus/vote-104-ft-seed1 \
        benchmarks/ferplus/vote-104-ft-seed2 --out benchmarks/ferplus/seeds

Writes OUT.json (for programs) and OUT.md (a table a person reads). A folder is a training's saved model folder
(model.json beside it) with the evaluate stage's evaluate.json copied in, or a QAT stage's folder (its model.json
names the QAT seed): then the seeds compared are those of QAT from one float model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer import atomic  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402
from edge_fer.evaluate import wilson_interval  # noqa: E402

FILES = ("keras", "tflite-int8", "tflite-int8-qat", "tflite-int8-grey")


def read_run(folder: Path) -> dict:
    for name in ("model.json", "evaluate.json"):
        if not (folder / name).is_file():
            raise SystemExit(f"error: {folder} has no {name}; give a training's model folder with its evaluate.json")
    model, scored = (json.loads((folder / name).read_text()) for name in ("model.json", "evaluate.json"))
    mode = next(iter(scored))  # the scoring label mode comes first (FERPlus: majority)
    qat = model.get("qat_config")  # a QAT stage's record: the seeds compared are QAT's, and so is the time
    seed = qat["seed"] if qat else model["config"]["train"]["seed"]
    seconds = model.get("qat_seconds") if qat else model.get("train_seconds")
    return {"folder": str(folder), "seed": seed, "label_mode": mode,
            "valid": model["metrics"]["valid"]["accuracy"], "valid_count": model["metrics"]["valid"]["count"],
            "test": {name: scored[mode][name]["accuracy"] for name in FILES if name in scored[mode]},
            "test_count": scored[mode]["keras"]["count"], "train_seconds": seconds}


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="one model folder per seed")
    parser.add_argument("--out", required=True, type=Path, help="OUT.json and OUT.md are written")
    args = parser.parse_args()
    runs = [read_run(folder) for folder in args.folders]
    if len({run["seed"] for run in runs}) < len(runs):
        raise SystemExit("error: two folders were trained with the same seed")
    names = [name for name in FILES if all(name in run["test"] for run in runs)]
    summary = {"valid": spread([run["valid"] for run in runs]),
               **{name: spread([run["test"][name] for run in runs]) for name in names}}
    count = runs[0]["test_count"]
    half = {name: (lambda low_high: (low_high[1] - low_high[0]) / 2)(wilson_interval(summary[name]["mean"], count))
            for name in names}
    result = {"runs": runs, "summary": summary, "test_interval_half_width": half}
    atomic.write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2))
    columns = ["seed", "folder", f"valid ({runs[0]['valid_count']})", *[f"test {name}" for name in names], "train s"]
    lines = [f"Seeds of one training, scored on the FERPlus {runs[0]['label_mode']} test set ({count} images); "
             f"valid is the split training chose its epoch on. Produced by:", "",
             f"    python benchmarks/seed_table.py {' '.join(str(f) for f in args.folders)} --out {args.out}", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for run in runs:
        cells = [run["seed"], f"`{run['folder']}`", f"{run['valid']:.4f}",
                 *[f"{run['test'][name]:.4f}" for name in names], run["train_seconds"] and f"{run['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    for label, key in (("mean", "mean"), ("std (sample)", "std")):
        cells = [label, "", f"{summary['valid'][key]:.4f}", *[f"{summary[name][key]:.4f}" for name in names], ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "The spread over seeds is training noise (one test set, models trained again); the 95% Wilson interval "
              f"of one test accuracy here, about ±{max(half.values()):.4f}, is the test set's sampling noise (one "
              "model, other test images). The two are different sources."]
    atomic.write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
