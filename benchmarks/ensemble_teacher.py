"""How good a teacher the committed FERPlus models make together: each model alone, the mean of all their
probabilities, and the subset chosen greedily on the validation split, each on the majority validation and test
sets with its 95% interval. A distilled student rarely passes its teacher, so this bounds what distillation from
these models can give. Every model must have been trained on the dataset's classes, in its order (checked from
the models' records before anything is scored); --dataset names another registered dataset.

    python benchmarks/ensemble_teacher.py --root ../shared/datasets/ferplus --model benchmarks/ferplus/vote \
        --model benchmarks/ferplus/vote-104-ft ... --out benchmarks/ferplus/ensemble

Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer import atomic  # noqa: E402
from edge_fer.artifacts import record_of  # noqa: E402
from edge_fer.compare import run_batches  # noqa: E402
from edge_fer.data.preprocess import to_model_input  # noqa: E402
from edge_fer.data.spec import DatasetSpec  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402
from edge_fer.evaluate import wilson_interval  # noqa: E402
from edge_fer.runtimes import runtime_for  # noqa: E402

SPLITS = ("valid", "test")
TITLES = {"ferplus": "FERPlus"}


CHUNK = 2048  # images resized at a time: FERPlus's training split at 112 px would take 4 GB at once


def probabilities_of(model: str, images: dict) -> dict:
    """Each split's probabilities ({split: uint8 images}), the images resized to the model's size a chunk at a time."""
    with runtime_for(model) as runner:
        size = runner.input_spec.height
        return {split: np.concatenate([run_batches(runner, to_model_input(split_images[i:i + CHUNK], size), 64)
                                       for i in range(0, len(split_images), CHUNK)])
                for split, split_images in images.items()}


def check_exist(models: list[str]) -> None:
    """Before the dataset is read: a mistyped path is the commonest error, and reading FERPlus takes seconds."""
    missing = [m for m in models if not Path(m).exists()]
    if missing:
        raise SystemExit(f"error: model does not exist: {', '.join(missing)}")


def check_classes(models: list[str], classes: list[str]) -> None:
    """Averaging probabilities column by column needs every model in the dataset's class order: checked from the
    records, before anything is scored."""
    wrong = [m for m in models if (record_of(m) or {}).get("classes") != classes]
    if wrong:
        raise SystemExit(f"error: {', '.join(wrong)}: its classes (in its model.json or .json) are not the dataset's "
                         f"{classes}; give models trained on this dataset")


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def scored(name: str, members: list[str], outputs: dict, labels: dict) -> dict:
    row = {"name": name, "members": members}
    for split in SPLITS:
        mean = np.mean([outputs[m][split] for m in members], axis=0)
        row[split] = accuracy(mean, labels[split])
        row[f"{split}_interval_95"] = wilson_interval(row[split], len(labels[split]))
    return row


def table_row(name: str, row: dict) -> str:
    """| name | valid | valid 95% | test | test 95% |"""
    cells = [f"{row[split]:.4f} | {row[f'{split}_interval_95'][0]:.3f}-{row[f'{split}_interval_95'][1]:.3f}"
             for split in SPLITS]
    return f"| {name} | {' | '.join(cells)} |"


def member_labels(models: list[str]) -> dict:
    """How an ensemble row names its members: file or folder names while those tell the models apart, else the paths
    as given (two folders' model-tflite-int8.tflite are two models)."""
    names = [Path(m).name for m in models]
    distinct = len(set(names)) == len(names)
    return {m: name if distinct else m for m, name in zip(models, names)}


def greedy_on_valid(outputs: dict, labels: dict) -> list[str]:
    """Add the model that raises the validation accuracy most, until none does (chosen without the test set)."""
    chosen, best = [], -1.0
    while True:
        trials = [(scored("", chosen + [m], outputs, labels)["valid"], m) for m in outputs if m not in chosen]
        if not trials:
            return chosen
        value, model = max(trials)
        if value <= best:
            return chosen
        chosen, best = chosen + [model], value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ferplus")
    parser.add_argument("--root", default="../shared/datasets/ferplus")
    parser.add_argument("--model", action="append", required=True, help="a saved model folder or file; repeat it")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    check_exist(args.model)
    dataset = DatasetSpec.of({"dataset": args.dataset, "root": args.root or None}).load()  # its first label mode
    check_classes(args.model, list(dataset.classes))
    labels = {split: dataset.splits[split].labels for split in SPLITS}
    outputs = {model: probabilities_of(model, {split: dataset.splits[split].images for split in SPLITS})
               for model in args.model}
    rows = [scored(model, [model], outputs, labels) for model in args.model]
    rows.append(scored("mean of all", list(args.model), outputs, labels))
    greedy = greedy_on_valid(outputs, labels)
    rows.append(scored("greedy on valid", greedy, outputs, labels))
    title = TITLES.get(args.dataset, args.dataset)
    result = {"dataset": f"{title} {dataset.label_mode}", "counts": {s: int(len(labels[s])) for s in SPLITS}, "rows": rows}
    atomic.write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2))
    models = " ".join(f"--model {m}" for m in args.model)
    dataset_flag = "" if args.dataset == "ferplus" else f" --dataset {args.dataset}"
    lines = [f"Ensembles of committed {title} models (mean of probabilities), {title} {dataset.label_mode} validation "
             f"({len(labels['valid'])}) and test ({len(labels['test'])}) sets, 95% Wilson intervals. Produced by:", "",
             f"    python benchmarks/ensemble_teacher.py{dataset_flag} --root {args.root} {models} --out {args.out}", "",
             "| model(s) | valid | valid 95% | test | test 95% |", "|---|---|---|---|---|"]
    label = member_labels(args.model)
    for row in rows:
        name = row["name"] if len(row["members"]) == 1 else f"{row['name']}: {', '.join(label[m] for m in row['members'])}"
        lines.append(table_row(name, row))
    atomic.write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
