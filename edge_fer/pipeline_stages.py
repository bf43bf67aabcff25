"""What each pipeline stage does. Each takes the pipeline and its stage folder and returns a summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from edge_fer import ui
from edge_fer.config import from_dict
from edge_fer.errors import UserError


def dataset_spec(pipeline, label_mode: str | None = None) -> dict:
    data = pipeline.config.data
    return {"name": data.dataset, "root": data.root, "label_mode": label_mode or data.label_mode, "options": data.options}


def scoring_spec(pipeline) -> dict:
    """The dataset that artifacts are scored on: a training-only label mode scores on the official one."""
    from edge_fer.data import get_adapter

    return dataset_spec(pipeline, get_adapter(pipeline.config.data.dataset).scoring_mode(pipeline.config.data.label_mode))


def load(spec: dict):
    from edge_fer.data import load_dataset

    return load_dataset(spec["name"], spec.get("root"), label_mode=spec.get("label_mode"), **(spec.get("options") or {}))


def stage_data(pipeline, stage_dir: Path) -> dict:
    summary = load(dataset_spec(pipeline)).summary()
    (stage_dir / "data.json").write_text(json.dumps(summary, indent=2))
    return {"summary": {"dataset": summary["dataset"], "synthetic": summary["synthetic"],
                        "sizes": {k: v["count"] for k, v in summary["splits"].items()}}}


def fold_data(pipeline, fold: int) -> dict:
    data = asdict(pipeline.config.data)
    data["options"] = {**data["options"], "folds": pipeline.config.cross_validation.folds, "fold": fold}
    return data


def train_config_of(config, stage_dir: Path):
    from edge_fer.train.config import TrainConfig

    return from_dict(TrainConfig, {"data": asdict(config.data), "model": asdict(config.model),
                                   "train": asdict(config.train), "out": str(stage_dir)})


def chief_train_is_current(config) -> bool:
    """The chief's train stage is done for these settings (so it will not train, and a worker has no one to join)."""
    from edge_fer.pipeline import Pipeline, read_manifest

    pipeline = Pipeline(config)
    if "train" not in config.stages:
        raise UserError("--workers: this pipeline has no train stage for the workers to share")
    manifest = read_manifest(pipeline.stage_dir("train"))
    return bool(manifest) and manifest.get("settings_hash") == pipeline.settings_hash("train")


def train_as_worker(config) -> dict:
    """A multi-worker pipeline's other workers: train beside the chief into its (shared) train folder."""
    from edge_fer.pipeline import Pipeline
    from edge_fer.train.trainer import train

    return train(train_config_of(config, Pipeline(config).stage_dir("train")))


def stage_train(pipeline, stage_dir: Path) -> dict:
    from edge_fer.train.config import TrainConfig
    from edge_fer.train.trainer import train

    config = pipeline.config
    folds = config.cross_validation.folds
    if folds > 1:  # one model per subject-independent fold
        records = [train(from_dict(TrainConfig, {"data": fold_data(pipeline, fold), "model": asdict(config.model),
                                                 "train": asdict(config.train), "out": str(stage_dir / f"fold-{fold}")}))
                   for fold in range(folds)]
        accuracies = [r["metrics"]["test"]["accuracy"] for r in records]
        return {"summary": {"folds": folds, "accuracy": mean_std(accuracies)}}
    record = train(train_config_of(config, stage_dir))
    test = record["metrics"].get("test") or record["metrics"]["valid"]
    return {"summary": {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "pretrained": record["pretrained"],
                        "train_seconds": record["train_seconds"]}, "metrics": record["metrics"]}


def stage_qat(pipeline, stage_dir: Path) -> dict:
    from edge_fer.quantize.config import QatConfig
    from edge_fer.quantize.qat import run_qat

    config = pipeline.config
    qat_config = from_dict(QatConfig, {**asdict(config.qat), "model": str(pipeline.stage_dir("train")),
                                       "data": asdict(config.data), "seed": config.train.seed, "out": str(stage_dir)})
    record = run_qat(qat_config)
    test = record["metrics"].get("test") or record["metrics"]["valid"]
    return {"summary": {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"]}, "metrics": record["metrics"]}


def stage_export(pipeline, stage_dir: Path) -> dict:
    from edge_fer.export.exporter import ExportSettings, export

    section = pipeline.config.export
    settings = ExportSettings(formats=section.formats, calibration_images=section.calibration_images,
                              parity_images=section.parity_images, target=section.target, threads=section.threads,
                              seed=pipeline.config.train.seed)
    qat_dir = pipeline.stage_dir("qat") if "qat" in pipeline.config.stages else None
    results = export(pipeline.stage_dir("train"), stage_dir, settings, qat_dir=qat_dir)
    statuses = {r["format"]: r["status"] for r in results}
    bad = [name for name, status in statuses.items() if status in ("failed", "failed-check")]
    for result in results:
        if result.get("reason") and result["status"] != "skipped":
            ui.warn(f"{result['format']}: {result['reason']}")
    return {"summary": {"formats": statuses}, "metrics": results, "status": "ran with failures" if bad else "ran"}


def exported_artifacts(pipeline, also_failed_check: bool = False) -> list[Path]:
    report = json.loads((pipeline.stage_dir("export") / "export.json").read_text())
    wanted = ("passed", "failed-check") if also_failed_check else ("passed",)
    return [Path(r["path"]) for r in report["results"] if r["status"] in wanted and r.get("path")]


def stage_evaluate(pipeline, stage_dir: Path) -> dict:
    """Accuracy of the float model and of every passed artifact, on the test split, for each label mode."""
    from edge_fer.compare import run_batches
    from edge_fer.data.preprocess import to_model_input
    from edge_fer.evaluate import classification_metrics
    from edge_fer.runtimes import runtime_for

    section = pipeline.config.evaluate
    if pipeline.config.cross_validation.folds > 1:
        return evaluate_folds(pipeline, stage_dir)
    candidates = [pipeline.stage_dir("train")]
    if "export" in pipeline.config.stages:
        candidates += exported_artifacts(pipeline)
    scored = scoring_spec(pipeline)["label_mode"]
    modes = [scored] + [m for m in section.label_modes if m != scored]
    results = {}
    for mode in modes:
        dataset = load(dataset_spec(pipeline, mode))
        split = dataset.splits[section.split]
        probabilities = {}
        for artifact in candidates:
            name = "keras" if artifact.is_dir() else artifact.name.removeprefix("model-").rsplit(".", 1)[0]
            with runtime_for(artifact, threads=section.threads) as runner:
                probabilities[name] = run_batches(runner, to_model_input(split.images, runner.input_spec.height), 64)
        results[dataset.label_mode or "default"] = {
            name: classification_metrics(split.labels, probs, dataset.classes) for name, probs in probabilities.items()}
    (stage_dir / "evaluate.json").write_text(json.dumps(results, indent=2))
    first = results[next(iter(results))]
    rows = [[name, m["accuracy"], m["macro_f1"], min((v for v in m["per_class_accuracy"].values() if v is not None), default=None)]
            for name, m in first.items()]
    ui.err.print(ui.table(f"evaluate on {pipeline.config.data.dataset} {section.split}", ["model", "accuracy", "macro-F1", "worst class"], rows))
    return {"summary": {name: round(m["accuracy"], 4) for name, m in first.items()}, "metrics": results}


def evaluate_folds(pipeline, stage_dir: Path) -> dict:
    """Each fold's model on its own held-out subjects; mean and standard deviation across folds."""
    from edge_fer.evaluate import classification_metrics, predict_keras
    from edge_fer.models.loading import load_model

    per_fold = []
    for fold in range(pipeline.config.cross_validation.folds):
        model, meta = load_model(pipeline.stage_dir("train") / f"fold-{fold}")
        data = fold_data(pipeline, fold)
        dataset = load({"name": data["dataset"], "root": data["root"], "label_mode": data["label_mode"], "options": data["options"]})
        split = dataset.splits["test"]
        per_fold.append(classification_metrics(split.labels, predict_keras(model, split.images, meta["image_size"]), dataset.classes))
    result = {"folds": per_fold, "accuracy": mean_std([m["accuracy"] for m in per_fold]),
              "macro_f1": mean_std([m["macro_f1"] for m in per_fold])}
    (stage_dir / "evaluate.json").write_text(json.dumps(result, indent=2))
    ui.err.print(f"{len(per_fold)}-fold accuracy {result['accuracy']['mean']:.4f} ± {result['accuracy']['std']:.4f}")
    return {"summary": {"accuracy_mean": result["accuracy"]["mean"], "accuracy_std": result["accuracy"]["std"]}, "metrics": result}


def store_path(pipeline) -> Path:
    return Path(pipeline.config.bench.store) if pipeline.config.bench.store else pipeline.folder / "results.sqlite"


def bench_settings(pipeline):
    from edge_fer.bench.runner import BenchSettings

    section = pipeline.config.bench
    return BenchSettings(warmup_queries=section.warmup_queries, min_queries=section.min_queries,
                         min_duration_s=section.min_duration_s, offline_batch=section.offline_batch,
                         rounds=section.rounds, threads=section.threads, store=str(store_path(pipeline)))


def peak_rows(target: str, settings) -> list[dict]:
    """The host's peak MAC rate per runtime and precision (bench.peak), measured like the artifacts."""
    import tempfile

    from edge_fer.bench.peak import write_peak_artifacts
    from edge_fer.bench.runner import bench

    with tempfile.TemporaryDirectory() as folder:
        return bench(write_peak_artifacts(Path(folder)), target, settings, None)


def stage_bench(pipeline, stage_dir: Path) -> dict:
    from edge_fer.bench.peak import PEAK_VARIANT
    from edge_fer.bench.runner import bench

    section, settings = pipeline.config.bench, bench_settings(pipeline)
    rows = bench(exported_artifacts(pipeline, section.time_failed_check), section.target, settings,
                 scoring_spec(pipeline) if section.score else None)
    if section.peak:
        rows += peak_rows(section.target, settings)
    (stage_dir / "bench.json").write_text(json.dumps(rows, indent=2, default=str))
    return {"summary": {(f"peak {r['format']}" if r.get("variant") == PEAK_VARIANT else r["format"]):
                        {"status": r["status"], "p50_ms": r.get("p50_ms"), "accuracy": r.get("accuracy")} for r in rows}}


def training_lines(train_dir: Path) -> list[str] | None:
    """What was trained, on what, how long it took here, and with which settings (from model.json)."""
    from edge_fer.train.callbacks import read_history

    model_json = train_dir / "model.json"
    if not model_json.is_file():
        return None
    record = json.loads(model_json.read_text())
    history = [r for path in sorted((train_dir / "stages").glob("*/history.jsonl")) for r in read_history(path)]
    epochs, seconds = len(history), sum(r.get("seconds", 0.0) for r in history)
    lines = [f"- model: {record['variant']} at {record['image_size']} px, weights {record['weights']} "
             f"(pretrained: {record['pretrained']}); {record.get('weights_source', '')}",
             f"- data: {record['dataset']['name']} ({'SYNTHETIC' if record['dataset']['synthetic'] else 'real'}), "
             f"label mode {record['dataset']['label_mode']}, sizes {record['dataset']['sizes']}",
             f"- schedule: {record['schedule']}; {epochs} epochs took {seconds:.0f} s on this machine "
             f"(the sum of the logged epoch times, across resumed sessions)",
             f"- settings: {settings_text(schedule_settings(record['config']['train']))}"]
    lines += [f"- note: {note}" for note in dict.fromkeys(r["note"] for r in history if r.get("note"))]
    if record.get("init_from"):
        init = record["init_from"]
        lines.append(f"- initialised from `{init['path']}` ({init['layers_copied']} layers copied; fresh: "
                     f"{', '.join(init['layers_fresh']) or 'none'})")
    if record.get("distillation"):
        lines.append(distillation_line(record["distillation"], record["metrics"].get("test")))
    if not record["pretrained"]:
        lines.append("- These are FROM-SCRATCH numbers: no ImageNet weights were available.")
    return lines


def schedule_settings(train: dict) -> dict:
    """The training settings without the sections of the schedule that did not run."""
    unused = ("head", "finetune") if train.get("schedule") == "from_scratch" else ("scratch",)
    return {key: value for key, value in train.items() if key not in unused}


def settings_text(settings: dict, prefix: str = "") -> str:
    """Nested settings as 'key value' pairs that wrap like prose: 'batch_size 32; scratch.epochs 20; ...'."""
    pairs = []
    for key, value in settings.items():
        if isinstance(value, dict):
            inner = settings_text(value, f"{prefix}{key}.")
            pairs += [inner] if inner else []
        elif value not in (None, [], {}):
            pairs.append(f"{prefix}{key} {value}")
    return "; ".join(pairs)


def distillation_line(distillation: dict, test_metrics: dict | None) -> str:
    teachers = ", ".join(distillation["teacher"])
    own = distillation.get("teacher_test_accuracy")
    measured = (f"; teacher test accuracy {', '.join(f'{a:.4f}' for a in own)}"
                + (f" (ensemble {distillation['ensemble_test_accuracy']:.4f})" if len(own) > 1 else "")) if own else ""
    student = f", student {test_metrics['accuracy']:.4f}" if test_metrics else ""
    return (f"- distilled from {teachers} (temperature {distillation['temperature']}, weight {distillation['weight']})"
            f"{measured}{student}")


def training_section(pipeline) -> tuple[str, str] | None:
    lines = training_lines(pipeline.stage_dir("train"))
    return ("Training", "\n".join(lines)) if lines else None


def accuracy_tables(results: dict, split: str, label: Callable[[str, str], str] = lambda run, name: name) -> list[str]:
    """One Markdown table per label mode: count, accuracy, macro-F1 and per-class accuracy of each model.
    `results` maps a run name to that run's evaluate.json."""
    from edge_fer.report import markdown_table

    parts = []
    modes = list(dict.fromkeys(mode for evaluated in results.values() for mode in evaluated))
    for mode in modes:
        rows, classes = [], None
        for run, evaluated in results.items():
            for name, m in evaluated.get(mode, {}).items():
                classes = classes or m["classes"]
                rows.append([label(run, name), f"{m['count']}", f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}",
                             *("-" if m["per_class_accuracy"][c] is None else f"{m['per_class_accuracy'][c]:.3f}"
                               for c in classes)])
        parts += [f"Label mode `{mode}`, split `{split}`:", "",
                  markdown_table(["model", "images", "accuracy", "macro-F1", *classes], rows), ""]
    return parts


def evaluate_section(pipeline) -> tuple[str, str] | None:
    path = pipeline.stage_dir("evaluate") / "evaluate.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    if "folds" in results:
        return "Cross-validation", f"accuracy {results['accuracy']['mean']:.4f} ± {results['accuracy']['std']:.4f}"
    return "Accuracy per artifact (host evaluation)", "\n".join(accuracy_tables({"": results}, pipeline.config.evaluate.split))


def baselines_section(pipeline) -> tuple[str, str] | None:
    """Other pipeline runs (report.baselines: their run folders), their float models beside this run's."""
    folders = [Path(folder) for folder in pipeline.config.report.baselines]
    if not folders:
        return None
    keep = ("keras", "tflite-int8-qat")
    results, lines = {}, []
    for run, folder in [(pipeline.config.name, pipeline.folder), *((f.name, f) for f in folders)]:
        path = folder / "evaluate" / "evaluate.json"
        if not path.is_file():
            ui.warn(f"report.baselines: {path} does not exist yet; skipped")
            continue
        results[run] = {mode: {name: m for name, m in models.items() if name in keep}
                        for mode, models in json.loads(path.read_text()).items()}
        if folder != pipeline.folder:  # this run's own training is in the Training section already
            variant = json.loads((folder / "train" / "model.json").read_text())["variant"]
            lines += [f"`{folder}` ({variant}):", "", *(training_lines(folder / "train") or []), ""]
    if len(results) < 2:
        return None
    label = lambda run, name: f"{run}: {name}"
    return "Baselines", "\n".join([*accuracy_tables(results, pipeline.config.evaluate.split, label), *lines])


def included_sections(section) -> list[tuple[str, str]]:
    """report.include: each Markdown file as a (title, body) section; a missing one is a warning."""
    sections = []
    for include in section.include:
        path = Path(include)
        if path.is_file():
            sections.append((path.stem.replace("-", " "), path.read_text()))
        else:
            ui.warn(f"report.include: {path} does not exist yet; skipped")
    return sections


def stage_report(pipeline, stage_dir: Path) -> dict:
    from edge_fer.report import build_report

    section = pipeline.config.report
    out = Path(section.out) if section.out else stage_dir
    extras = [extra for extra in (training_section(pipeline), evaluate_section(pipeline), baselines_section(pipeline))
              if extra]
    extras += included_sections(section)
    from edge_fer.sweep import load_references

    report = build_report(store_path(pipeline), out, commands=pipeline.commands + section.commands, name=section.name,
                          extras=extras, references=load_references(section.references))
    (stage_dir / "report.json").write_text(json.dumps({"out": str(out), "runs": len(report["history"])}, indent=2))
    return {"summary": {"report": report["markdown"]}}


# what a stage made outside its own folder, checked before it counts as up to date: a results store replaced or
# corrupted since the bench ran sends the bench stage to run again (and its one-line error if the file is not a store)
OUTSIDE_OUTPUTS = {"bench": lambda pipeline: __import__("edge_fer.bench.store", fromlist=["intact"]).intact(store_path(pipeline))}

STAGE_FUNCTIONS = {"data": stage_data, "train": stage_train, "qat": stage_qat, "export": stage_export,
                   "evaluate": stage_evaluate, "bench": stage_bench, "report": stage_report}


def mean_std(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0, "values": values}
