"""A training ablation from the runs' own records: each run's settings that differ from the first (the base),
its validation and test accuracy (with the test's 95% Wilson interval) and its training time.

    python benchmarks/ablation_table.py benchmarks/ferplus/recipe-64/base-model.json \
        benchmarks/ferplus/recipe-64/smooth-model.json ... --out benchmarks/ferplus/recipe-64/ablation

Each file is a training's model.json (edge-fer writes it beside model.keras). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer import atomic  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402
from edge_fer.evaluate import wilson_interval  # noqa: E402
from edge_fer.pipeline.runner import HOW_NOT_WHAT, LATER_DEFAULTS  # noqa: E402

WHERE_NOT_WHAT = {f"{section}.{key}" for section, key in HOW_NOT_WHAT}  # where a run trained, not what it made

SECTIONS = ("data", "model", "train")


def flat(config: dict, prefix: str = "") -> dict:
    found = {}
    for key, value in config.items():
        if isinstance(value, dict):
            found |= flat(value, f"{prefix}{key}.")
        else:
            found[f"{prefix}{key}"] = value
    return found


def read(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; give a training's model.json")
    record = json.loads(path.read_text())
    if "metrics" not in record or "config" not in record:
        raise SystemExit(f"error: {path} is not a training's model.json (no metrics or config)")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path, help="model.json files, the base first")
    parser.add_argument("--out", required=True, type=Path, help="OUT.json and OUT.md are written")
    args = parser.parse_args()
    records = [read(path) for path in args.records]
    settings = [flat({section: record["config"][section] for section in SECTIONS}) for record in records]
    # a setting added after the base was trained: the base had it at its default
    base = flat({section: {key: value for (where, key), value in LATER_DEFAULTS.items() if where == section}
                 for section in SECTIONS}) | settings[0]
    rows = []
    for path, record, these in zip(args.records, records, settings):
        changed = {key: value for key, value in these.items() if base.get(key) != value and key not in WHERE_NOT_WHAT}
        test, valid = record["metrics"]["test"], record["metrics"]["valid"]
        rows.append({"record": str(path), "changed": changed, "valid": valid["accuracy"], "valid_count": valid["count"],
                     "valid_interval_95": wilson_interval(valid["accuracy"], valid["count"]),
                     "valid_minus_base": round(valid["accuracy"] - records[0]["metrics"]["valid"]["accuracy"], 4),
                     "test": test["accuracy"], "test_count": test["count"],
                     "test_interval_95": wilson_interval(test["accuracy"], test["count"]),
                     "train_seconds": record.get("train_seconds"), "epochs": these.get("train.scratch.epochs")})
    atomic.write_text(args.out.with_suffix(".json"), json.dumps({"rows": rows}, indent=2))
    lines = [f"Training ablation: each run against the first (`{args.records[0]}`), validation ({rows[0]['valid_count']} "
             f"images: what the run chose its epoch on) and test ({rows[0]['test_count']} images) accuracy with 95% "
             "Wilson intervals, the validation difference from the base in points (what a choice is made on), and "
             "the training time on the host it ran on (compare it only between runs of one session). Produced by:", "",
             f"    python benchmarks/ablation_table.py {' '.join(str(p) for p in args.records)} --out {args.out}", "",
             "| run | changed from the base | valid | valid 95% | valid - base | test | test 95% | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        changes = ", ".join(f"{key} = {value}" for key, value in row["changed"].items()) or "(the base)"
        (valid_low, valid_high), (low, high) = row["valid_interval_95"], row["test_interval_95"]
        seconds = "-" if row["train_seconds"] is None else f"{row['train_seconds']:.0f}"
        lines.append(f"| `{Path(row['record']).name}` | {changes} | {row['valid']:.4f} | {valid_low:.3f}-{valid_high:.3f} "
                     f"| {100 * row['valid_minus_base']:+.1f} | {row['test']:.4f} | {low:.3f}-{high:.3f} | {seconds} |")
    atomic.write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
