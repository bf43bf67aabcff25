"""What a distillation teacher adds to FERPlus's vote distributions: on the training images a student learns from
and on the validation images nobody trained on, how close each teacher's probabilities (and their mean) come to the
ten taggers' votes, how sharp they are and which classes they lean to. A teacher trained on the same images is a
copy of their votes there: how far off, how much softer or sharper and how differently balanced the copy is says
what mixing it into a student's target can add to the votes alone.

    python benchmarks/teacher_targets.py --root ../shared/datasets/ferplus --model benchmarks/ferplus/vote \
        --model benchmarks/ferplus/vote-104-ft ... --out benchmarks/ferplus/teacher-targets

Images are scored as the model sees them at inference (no augmentation). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ensemble_teacher import check_classes, check_exist, probabilities_of  # noqa: E402 (this folder)

from edge_fer import atomic  # noqa: E402
from edge_fer.data.spec import DatasetSpec  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402

SPLITS = ("train", "valid")
EPSILON = 1e-7


def entropy(distributions: np.ndarray) -> np.ndarray:
    return -np.sum(distributions * np.log(distributions + EPSILON), axis=1)


def spread(distributions: np.ndarray) -> dict:
    """Mean entropy (nats), mean top probability, and each class's share of all the probability mass."""
    return {"entropy": round(float(np.mean(entropy(distributions))), 4),
            "top_probability": round(float(np.mean(distributions.max(1))), 4),
            "class_mass": [round(float(m), 4) for m in distributions.mean(axis=0)]}


def target_facts(probabilities: np.ndarray, votes: np.ndarray) -> dict:
    """Agreement with the votes' top class, KL(votes || p) in nats, and the spread of p."""
    kl = np.sum(votes * (np.log(votes + EPSILON) - np.log(probabilities + EPSILON)), axis=1)
    return {"top_class_agreement": round(float(np.mean(probabilities.argmax(1) == votes.argmax(1))), 4),
            "kl_votes_to_model": round(float(np.mean(kl)), 4), **spread(probabilities)}


def rows_of(outputs: dict, votes: dict) -> list[dict]:
    named = dict(outputs)
    named[f"mean of {len(outputs)}"] = {split: np.mean([o[split] for o in outputs.values()], axis=0)
                                        for split in SPLITS}
    rows = [{"name": "the votes themselves", **{split: spread(votes[split]) for split in SPLITS}}]
    rows += [{"name": name, **{split: target_facts(p[split], votes[split]) for split in SPLITS}}
             for name, p in named.items()]
    return rows


def cell(row: dict, split: str, key: str) -> str:
    value = row[split].get(key)
    return "-" if value is None else f"{value:.4f}"


def mass_table(rows: list[dict], classes: list[str], split: str) -> list[str]:
    """Each class's share of the probability mass on `split`: where a source leans against the votes."""
    lines = [f"| source | {' | '.join(classes)} |", "|---" * (1 + len(classes)) + "|"]
    return lines + [f"| {row['name']} | " + " | ".join(f"{m:.4f}" for m in row[split]["class_mass"]) + " |"
                    for row in rows]


def table(rows: list[dict]) -> list[str]:
    keys = ("top_class_agreement", "kl_votes_to_model", "entropy", "top_probability")
    header = " | ".join(f"{split} {key.replace('_', ' ')}" for split in SPLITS for key in keys)
    lines = [f"| source | {header} |", "|---" * (1 + len(SPLITS) * len(keys)) + "|"]
    for row in rows:
        lines.append(f"| {row['name']} | " + " | ".join(cell(row, s, k) for s in SPLITS for k in keys) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/datasets/ferplus")
    parser.add_argument("--model", action="append", required=True, help="a saved model folder or file; repeat it")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    check_exist(args.model)
    dataset = DatasetSpec.of({"dataset": "ferplus", "root": args.root, "label_mode": "probability"}).load()
    check_classes(args.model, list(dataset.classes))
    images = {split: dataset.splits[split].images for split in SPLITS}
    votes = {split: dataset.splits[split].votes for split in SPLITS}
    outputs = {model: probabilities_of(model, images) for model in args.model}
    rows = rows_of(outputs, votes)
    counts = {split: int(len(votes[split])) for split in SPLITS}
    atomic.write_text(args.out.with_suffix(".json"), json.dumps({"counts": counts, "rows": rows}, indent=2))
    models = " ".join(f"--model {m}" for m in args.model)
    lines = [f"Teacher probabilities against the FERPlus vote distributions: training images ({counts['train']}, "
             f"which every model here trained on) and validation images ({counts['valid']}), un-augmented. "
             "Agreement: the model's top class is the votes' top class; KL(votes || model) and entropy in nats. "
             "Produced by:", "", f"    python benchmarks/teacher_targets.py --root {args.root} {models} --out {args.out}",
             "", *table(rows), "", f"Each class's share of the probability mass on the {counts['train']} training "
             "images (a student learns this balance from its targets; training adds class weights on top):", "",
             *mass_table(rows, list(dataset.classes), "train")]
    atomic.write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
