"""Report sections made from a run's own files (model.json, evaluate.json, Markdown to include, peer results):
each a (title, Markdown body) pair, or None where the file is not there yet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from edge_fer import atomic, ui
from edge_fer.errors import UserError
from edge_fer.report.tables import interval_cell, markdown_table, visible


def training_lines(train_dir: Path) -> list[str] | None:
    """What was trained, on what, how long it took here, and with which settings (from model.json)."""
    from edge_fer.train.callbacks import read_history

    model_json = train_dir / "model.json"
    if not model_json.is_file():
        return None
    record = json.loads(model_json.read_text())
    history = [r for path in sorted((train_dir / "stages").glob("*/history.jsonl")) for r in read_history(path)]
    epochs, seconds = len(history), sum(r.get("seconds", 0.0) for r in history)
    sizes = ", ".join(f"{split} {count}" for split, count in record["dataset"]["sizes"].items())
    lines = [f"- model: {record['variant']} at {record['image_size']} px; weights: "
             f"{record.get('weights_source') or record['weights']}",
             f"- data: {record['dataset']['name']} ({'SYNTHETIC' if record['dataset']['synthetic'] else 'real'}), "
             f"label mode {record['dataset']['label_mode']}; images: {sizes}",
             f"- schedule: {record['schedule']}; {epochs} epochs took {seconds:.0f} s on this machine "
             f"(the sum of the logged epoch times, across resumed sessions)"]
    lines += [f"- note: {note}" for note in dict.fromkeys(r["note"] for r in history if r.get("note"))]
    if record.get("init_from"):
        init = record["init_from"]
        lines.append(f"- initialised from `{init['path']}` ({init['layers_copied']} layers copied; fresh: "
                     f"{', '.join(init['layers_fresh']) or 'none'})")
    if record.get("distillation"):
        lines.append(distillation_line(record["distillation"], record["metrics"].get("test")))
    if not record["pretrained"]:
        lines.append("- These are FROM-SCRATCH numbers: no ImageNet weights were available.")
    return [*lines, "", settings_table(schedule_settings(record["config"]["train"])), ""]


def schedule_settings(train: dict) -> dict:
    """The training settings without the sections of the schedule that did not run."""
    unused = ("head", "finetune") if train.get("schedule") == "from_scratch" else ("scratch",)
    return {key: value for key, value in train.items() if key not in unused}


def settings_pairs(settings: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested settings as (dotted key, value) pairs, unset ones left out: ('scratch.epochs', 20), ..."""
    pairs = []
    for key, value in settings.items():
        if isinstance(value, dict):
            pairs += settings_pairs(value, f"{prefix}{key}.")
        elif value not in (None, [], {}):
            pairs.append((f"{prefix}{key}", value))
    return pairs


def settings_table(settings: dict, per_row: int = 3) -> str:
    """The training settings as a Markdown table, three settings to a row."""
    cells = [cell for key, value in settings_pairs(settings) for cell in (f"`{key}`", value)]
    cells += [""] * (-len(cells) % (2 * per_row))
    rows = [cells[start:start + 2 * per_row] for start in range(0, len(cells), 2 * per_row)]
    return markdown_table(["setting", "value"] * per_row, rows, left=tuple(range(0, 2 * per_row, 2)))


def distillation_line(distillation: dict, test_metrics: dict | None) -> str:
    teachers = ", ".join(distillation["teacher"])
    own = distillation.get("teacher_test_accuracy")
    measured = (f"; teacher test accuracy {', '.join(f'{a:.4f}' for a in own)}"
                + (f" (ensemble {distillation['ensemble_test_accuracy']:.4f})" if len(own) > 1 else "")) if own else ""
    student = f", student {test_metrics['accuracy']:.4f}" if test_metrics else ""
    return (f"- distilled from {teachers} (temperature {distillation['temperature']}, weight {distillation['weight']})"
            f"{measured}{student}")


def fixed(value: float | None, digits: int) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def accuracy_tables(results: dict, split: str, label: Callable[[str, str], str] = lambda run, name: name) -> list[str]:
    """Per label mode, two Markdown tables: each model's count, accuracy (with its 95% interval), macro-F1, expected
    calibration error, the share of images whose prediction differs from the float Keras model's and (FERPlus) the
    KL divergence from the annotators' votes, then its accuracy per class. `results` maps a run name to that run's
    evaluate.json (older ones lack the last three)."""
    parts = []
    modes = list(dict.fromkeys(mode for evaluated in results.values() for mode in evaluated))
    for mode in modes:
        rows, per_class, classes = [], [], None
        for run, evaluated in results.items():
            for name, m in evaluated.get(mode, {}).items():
                classes = classes or m["classes"]
                rows.append([label(run, name), f"{m['count']}", f"{m['accuracy']:.4f}",
                             interval_cell(m["accuracy"], m["count"]), f"{m['macro_f1']:.4f}",
                             fixed(m.get("ece"), 4), fixed(m.get("flip_rate"), 4), fixed(m.get("vote_kl"), 4)])
                per_class.append([label(run, name), *("-" if m["per_class_accuracy"][c] is None
                                                      else f"{m['per_class_accuracy'][c]:.3f}" for c in classes)])
        parts += [f"Label mode `{mode}`, split `{split}`:", "",
                  markdown_table(*visible(["model", "images", "accuracy", "95% interval", "macro-F1", "ECE",
                                           "flips vs float", "KL to votes"], rows)), "",
                  "Accuracy per class:", "", markdown_table(["model", *classes], per_class), ""]
    return parts


def training_section(train_dir: Path) -> tuple[str, str] | None:
    lines = training_lines(train_dir)
    return ("Training", "\n".join(lines)) if lines else None


def evaluate_section(path: Path, split: str) -> tuple[str, str] | None:
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    if "folds" in results:
        return "Cross-validation", f"accuracy {results['accuracy']['mean']:.4f} ± {results['accuracy']['std']:.4f}"
    return "Accuracy per artifact (host evaluation)", "\n".join(accuracy_tables({"": results}, split))


def baselines_section(run_name: str, run_folder: Path, baselines: list[str], split: str) -> tuple[str, str] | None:
    """Other pipeline runs (report.baselines: their run folders), their float models beside this run's."""
    folders = [Path(folder) for folder in baselines]
    if not folders:
        return None
    keep = ("keras", "tflite-int8-qat")
    results, lines = {}, []
    for run, folder in [(run_name, run_folder), *((f.name, f) for f in folders)]:
        path = folder / "evaluate" / "evaluate.json"
        if not path.is_file():
            ui.warn(f"report.baselines: {path} does not exist yet; skipped")
            continue
        results[run] = {mode: {name: m for name, m in models.items() if name in keep}
                        for mode, models in json.loads(path.read_text()).items()}
        if folder != run_folder:  # this run's own training is in the Training section already
            variant = json.loads((folder / "train" / "model.json").read_text())["variant"]
            lines += [f"`{folder}` ({variant}):", "", *(training_lines(folder / "train") or []), ""]
    if len(results) < 2:
        return None
    label = lambda run, name: f"{run}: {name}"  # noqa: E731
    return "Baselines", "\n".join([*accuracy_tables(results, split, label), *lines])


def included_sections(paths: list[str]) -> list[tuple[str, str]]:
    """report.include: each Markdown file as a (title, body) section; a missing one is a warning."""
    sections = []
    for include in paths:
        path = Path(include)
        if path.is_file():
            sections.append((path.stem.replace("-", " "), path.read_text()))
        else:
            ui.warn(f"report.include: {path} does not exist yet; skipped")
    return sections


def load_references(paths: list[str]) -> list[dict]:
    """Peer models drawn on the plot: files in benchmarks/fer_peer.py's format (rows with model, latency.p50_ms,
    accuracy)."""
    references = []
    for path in paths:
        payload = atomic.read_json(Path(path), None)
        if payload is None:
            ui.warn(f"report.references: {path} is missing or not JSON; skipped")
            continue
        rows = payload.get("rows") if isinstance(payload, dict) else None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise UserError(f"report.references: {path} is not a peer file (a JSON object with a list of rows, as "
                            "benchmarks/fer_peer.py writes)")
        classes = payload.get("classes") if isinstance(payload.get("classes"), list) else []
        for row in rows:
            if str(row.get("model", "")).startswith("PAtt-Lite"):
                continue  # ours: on the plot already, as artifacts
            latency, accuracy = row.get("latency"), row.get("accuracy")
            p50 = latency.get("p50_ms") if isinstance(latency, dict) else None
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (p50, accuracy)):
                raise UserError(f"report.references: {path}: row {row.get('model')!r} needs numbers latency.p50_ms and accuracy")
            references.append({"label": f"peer: {row.get('model')}, {len(classes)} classes", "kind": "peer",
                               "p50_ms": p50, "accuracy": accuracy})
    return references
