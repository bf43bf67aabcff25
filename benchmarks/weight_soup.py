"""Whether fine-tunes of one start average into one better model (a "model soup", Wortsman et al. 2022): each
model alone, the mean of their probabilities (an ensemble: N times the cost), and the mean of their weights (one
model, one model's cost) with its BatchNorm statistics recomputed on training images (majority labels). Averaged weights only work
where the members stayed near one another, so every layer's cosine similarity between members is reported too.

    python benchmarks/weight_soup.py --root ../shared/datasets/ferplus --model benchmarks/ferplus/vote-104-ft \
        --model benchmarks/ferplus/vote-104-ft-seed1 --model benchmarks/ferplus/vote-104-ft-seed2 \
        --out benchmarks/ferplus/soup

--greedy adds Wortsman et al.'s greedy soup: the members in order of validation accuracy, each kept only if the
average with it scores higher on validation than the average without it (the test set plays no part in the choice).

Writes OUT.json and OUT.md (FERPlus majority validation and test sets, 95% Wilson intervals). --save DIR also
writes the averaged model (with --greedy, the greedy soup) as an edge-fer model folder (model.keras and model.json:
the first member's record, with `soup_of` naming the members and their summed training time), which a pipeline
takes as model.init_from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ensemble_teacher import SPLITS, accuracy, check_classes, check_exist, member_labels, scored, table_row  # noqa: E402 (this folder)

from edge_fer import atomic  # noqa: E402
from edge_fer.data.preprocess import to_model_input  # noqa: E402
from edge_fer.data.spec import DatasetSpec  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402
from edge_fer.evaluate import predict_keras  # noqa: E402


def layer_similarity(models: list) -> list[dict]:
    """Per layer with weights: the lowest cosine similarity between the first member and each other one."""
    rows = []
    for layer in models[0].layers:
        if not layer.get_weights():
            continue
        flat = [np.concatenate([w.ravel() for w in m.get_layer(layer.name).get_weights()]) for m in models]
        cosines = [float(np.dot(flat[0], other) / (np.linalg.norm(flat[0]) * np.linalg.norm(other) + 1e-12))
                   for other in flat[1:]]
        rows.append({"layer": layer.name, "min_cosine": round(min(cosines), 4)})
    return rows


def keras_outputs(model, dataset) -> dict:
    """Each scored split's probabilities from a loaded Keras model."""
    return {split: predict_keras(model, dataset.splits[split].images, model.input_shape[1]) for split in SPLITS}


def check_architectures(paths: list[str], records: list[dict]) -> dict:
    """Weights average layer by layer only between models of one architecture (variant, classes, size, width):
    checked from their model.json records before any is loaded. Returns the first member's (create_model's arguments)."""
    from edge_fer.models.loading import architecture

    specs = [architecture(record, Path(path)) for path, record in zip(paths, records)]
    shape = [{k: v for k, v in spec.items() if k != "dropout"} for spec in specs]
    different = [path for path, spec in zip(paths[1:], shape[1:]) if spec != shape[0]]
    if different:
        raise SystemExit(f"error: {', '.join(different)}: not the architecture of {paths[0]} ({shape[0]}); "
                         "weights average only between models of one architecture")
    return specs[0]


def soup_of(models: list, spec: dict, train_images: np.ndarray, batches: int):
    """The members' mean weights, BatchNorm statistics recomputed on `batches` x 64 training images (un-augmented):
    the mean of the members' statistics does not describe the averaged layers."""
    from edge_fer.models.loading import build_model
    from edge_fer.train.callbacks import recalibrate_batchnorm

    soup = build_model(spec)
    soup.set_weights([np.mean(weights, axis=0) for weights in zip(*[m.get_weights() for m in models])])
    picks = np.random.default_rng(0).choice(len(train_images), size=min(len(train_images), 64 * batches), replace=False)
    images = to_model_input(train_images[np.sort(picks)], soup.input_shape[1])
    recalibrate_batchnorm(soup, [(images[i:i + 64], None) for i in range(0, len(images), 64)])
    return soup


def greedy_soup(models: list, valid_scores: list[float], make_soup, score_valid) -> tuple[list[int], object, list[dict]]:
    """The members in order of validation accuracy, the best first; each next one kept only if the soup with it
    scores higher on validation than the soup without it. Returns the kept members' indices, the soup (the best
    member itself while it stands alone) and each step's {member index, valid, kept}."""
    order = sorted(range(len(models)), key=lambda i: -valid_scores[i])
    kept, soup, best = [order[0]], models[order[0]], valid_scores[order[0]]
    steps = [{"member": order[0], "valid": best, "kept": True}]
    for index in order[1:]:
        trial = make_soup([models[i] for i in kept + [index]])
        score = score_valid(trial)
        steps.append({"member": index, "valid": score, "kept": score > best})
        if score > best:
            kept, soup, best = kept + [index], trial, score
    return kept, soup, steps


def save_soup(soup, paths: list[str], records: list[dict], bn_batches: int, folder: Path) -> None:
    """The averaged model as a model folder; each file under a temporary name, model.json (which loading needs) last."""
    from edge_fer.models.weights import weights_digest

    record = {key: value for key, value in records[0].items() if key not in ("metrics", "init_from", "wall_seconds")}
    record.update(weights_sha256=weights_digest(soup.get_weights()),
                  train_seconds=round(sum(r.get("train_seconds", 0.0) for r in records), 1),
                  soup_of={"models": [str(p) for p in paths], "batchnorm_images": 64 * bn_batches})
    folder.mkdir(parents=True)
    with atomic.replacing(folder / "model.keras") as temporary:
        soup.save(str(temporary))
    atomic.write_json(folder / "model.json", record)


def main() -> int:
    from edge_fer.models.loading import load_model, model_file, read_model_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ferplus")
    parser.add_argument("--root", default="../shared/datasets/ferplus")
    parser.add_argument("--model", action="append", required=True, help="a saved model folder; repeat it (2 or more)")
    parser.add_argument("--bn-batches", type=int, default=50, help="batches of 64 training images for BatchNorm")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--save", type=Path, help="also write the averaged model into this new folder")
    parser.add_argument("--greedy", action="store_true", help="also the greedy soup, members kept on validation")
    args = parser.parse_args()
    if len(args.model) < 2:
        raise SystemExit("error: give two or more models to average (--model twice or more); one was given")
    check_exist(args.model)
    if args.save and args.save.exists():
        raise SystemExit(f"error: {args.save} exists: --save writes a new model folder; give a path not yet taken")
    if not args.out.parent.is_dir() and args.out.parent != args.save:
        raise SystemExit(f"error: {args.out.parent} is not a folder: --out names files in an existing folder (or in --save's)")
    members = list(member_labels(args.model).values())
    dataset = DatasetSpec.of({"dataset": args.dataset, "root": args.root or None}).load()
    check_classes(args.model, list(dataset.classes))
    records = [read_model_json(model_file(path)) for path in args.model]
    architecture = check_architectures(args.model, records)
    models = [load_model(m)[0] for m in args.model]
    labels = {split: dataset.splits[split].labels for split in SPLITS}
    outputs = {name: keras_outputs(model, dataset) for name, model in zip(members, models)}
    def make_soup(chosen: list):
        return soup_of(chosen, architecture, dataset.splits["train"].images, args.bn_batches)

    soup = make_soup(models)
    outputs["mean of weights"] = keras_outputs(soup, dataset)
    rows = [scored(name, [name], outputs, labels) for name in members]
    rows.append(scored("mean of probabilities", members, outputs, labels))
    rows.append(scored("mean of weights", ["mean of weights"], outputs, labels))
    result = {"dataset": args.dataset, "models": args.model, "rows": rows}
    kept = list(range(len(models)))
    if args.greedy:
        valid = dataset.splits["valid"]

        def score_valid(model) -> float:
            return accuracy(predict_keras(model, valid.images, model.input_shape[1]), valid.labels)

        kept, soup, steps = greedy_soup(models, [row["valid"] for row in rows[:len(models)]], make_soup, score_valid)
        name = "greedy soup: " + " + ".join(members[i] for i in kept)
        outputs[name] = keras_outputs(soup, dataset)
        rows.append(scored(name, [name], outputs, labels))
        result["greedy_steps"] = [{**step, "member": members[step["member"]]} for step in steps]
    if args.save:
        save_soup(soup, [args.model[i] for i in kept], [records[i] for i in kept], args.bn_batches, args.save)
    result["layer_similarity"] = layer_similarity(models)
    atomic.write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2))
    lines = report_lines(args, result, len(labels["valid"]), len(labels["test"]))
    atomic.write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def report_lines(args, result: dict, valid_count: int, test_count: int) -> list[str]:
    similarity = result["layer_similarity"]
    far = [row for row in similarity if row["min_cosine"] < 0.5]
    lines = [f"Averaging {len(args.model)} models: probabilities against weights, {args.dataset} majority validation "
             f"({valid_count}) and test ({test_count}), 95% Wilson intervals. Produced by:", "",
             f"    python benchmarks/weight_soup.py --dataset {args.dataset} --root {args.root} "
             + " ".join(f"--model {m}" for m in args.model) + (" --greedy" if args.greedy else "") + f" --out {args.out}",
             "", "| model(s) | valid | valid 95% | test | test 95% |", "|---|---|---|---|---|"]
    lines += [table_row(row["name"], row) for row in result["rows"]]
    if "greedy_steps" in result:
        lines += ["", "Greedy soup, member by member in order of validation accuracy (kept when the average with it "
                  "scores higher on validation):", "", "| member | valid of the average with it | kept |", "|---|---|---|"]
        lines += [f"| {s['member']} | {s['valid']:.4f} | {'yes' if s['kept'] else 'no'} |" for s in result["greedy_steps"]]
    lines += ["", "Layers whose weights point apart between members (cosine below 0.5): "
              + (", ".join(f"{r['layer']} ({r['min_cosine']})" for r in far) or "none")
              + f"; the other {len(similarity) - len(far)} layers' lowest cosine is "
              + f"{min((r['min_cosine'] for r in similarity if r not in far), default=float('nan')):.3f}."]
    return lines


if __name__ == "__main__":
    sys.exit(run_script(main))
