"""What each pipeline stage does, and THE stage table: its name, the stages it reads, the settings sections that
decide its output, its function, whether a sweep runs it once over every point, and its one-line note. A stage
function takes a RunContext (the run's settings and folders) and its own stage folder, and returns a summary."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_fer import atomic, ui
from edge_fer.config import from_dict
from edge_fer.data.spec import DatasetSpec
from edge_fer.errors import UserError
from edge_fer.status import FAILED_CHECK, FAILURES, PASSED, RAN, RAN_WITH_FAILURES, SKIPPED


@dataclass
class RunContext:
    """What a stage may know of its run: the settings, the commands behind it, and where each stage writes."""

    config: object  # a PipelineConfig
    commands: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.config.folder

    def stage_dir(self, stage: str) -> Path:
        return self.folder / stage


def dataset_spec(run: RunContext, label_mode: str | None = None) -> DatasetSpec:
    return DatasetSpec.of(asdict(run.config.data)).with_label_mode(label_mode)


def scoring_spec(run: RunContext) -> DatasetSpec:
    """The dataset that artifacts are scored on: a training-only label mode scores on the official one."""
    from edge_fer.data import get_adapter

    data = run.config.data
    return dataset_spec(run, get_adapter(data.dataset).scoring_mode(data.label_mode))


def stage_data(run: RunContext, stage_dir: Path) -> dict:
    summary = dataset_spec(run).load().summary()
    atomic.write_json(stage_dir / "data.json", summary)
    return {"summary": {"dataset": summary["dataset"], "synthetic": summary["synthetic"],
                        "sizes": {k: v["count"] for k, v in summary["splits"].items()}}}


def fold_data(run: RunContext, fold: int) -> dict:
    data = asdict(run.config.data)
    data["options"] = {**data["options"], "folds": run.config.cross_validation.folds, "fold": fold}
    return data


def train_config_of(config, stage_dir: Path):
    from edge_fer.train.config import TrainConfig

    return from_dict(TrainConfig, {"data": asdict(config.data), "model": asdict(config.model),
                                   "train": asdict(config.train), "out": str(stage_dir)})


def stage_train(run: RunContext, stage_dir: Path) -> dict:
    from edge_fer.train.config import TrainConfig
    from edge_fer.train.trainer import train

    config = run.config
    folds = config.cross_validation.folds
    if folds > 1:  # one model per subject-independent fold
        records = [train(from_dict(TrainConfig, {"data": fold_data(run, fold), "model": asdict(config.model),
                                                 "train": asdict(config.train), "out": str(stage_dir / f"fold-{fold}")}))
                   for fold in range(folds)]
        accuracies = [r["metrics"]["test"]["accuracy"] for r in records]
        return {"summary": {"folds": folds, "accuracy": mean_std(accuracies)}}
    record = train(train_config_of(config, stage_dir))
    test = record["metrics"].get("test") or record["metrics"]["valid"]
    return {"summary": {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "pretrained": record["pretrained"],
                        "train_seconds": record["train_seconds"]}, "metrics": record["metrics"]}


def stage_qat(run: RunContext, stage_dir: Path) -> dict:
    from edge_fer.quantize.config import QatConfig
    from edge_fer.quantize.qat import run_qat

    config = run.config
    qat_config = from_dict(QatConfig, {**asdict(config.qat), "model": str(run.stage_dir("train")),
                                       "data": asdict(config.data), "out": str(stage_dir),
                                       "seed": config.train.seed if config.qat.seed is None else config.qat.seed})
    record = run_qat(qat_config)
    test = record["metrics"].get("test") or record["metrics"]["valid"]
    return {"summary": {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"]}, "metrics": record["metrics"]}


def stage_export(run: RunContext, stage_dir: Path) -> dict:
    from edge_fer.debug.auto import resolve_keep_float
    from edge_fer.export.exporter import ExportSettings, export

    section = run.config.export
    settings = ExportSettings(formats=section.formats, calibration_images=section.calibration_images,
                              parity_images=section.parity_images, target=section.target, threads=section.threads,
                              seed=run.config.train.seed, keep_float=list(section.keep_float))
    qat_dir = run.stage_dir("qat") if "qat" in run.config.stages else None
    results = export(run.stage_dir("train"), stage_dir, settings, qat_dir=qat_dir, choose_keep_float=resolve_keep_float)
    statuses = {r["format"]: r["status"] for r in results}
    bad = [name for name, status in statuses.items() if status in FAILURES]
    for result in results:
        if result.get("reason") and result["status"] != SKIPPED:
            ui.warn(f"{result['format']}: {result['reason']}")
    return {"summary": {"formats": statuses}, "metrics": results, "status": RAN_WITH_FAILURES if bad else RAN}


def exported_artifacts(run: RunContext, also_failed_check: bool = False) -> list[Path]:
    if "export" not in run.config.stages:
        return []
    report = json.loads((run.stage_dir("export") / "export.json").read_text())
    wanted = (PASSED, FAILED_CHECK) if also_failed_check else (PASSED,)
    return [Path(r["path"]) for r in report["results"] if r["status"] in wanted and r.get("path")]


def stage_evaluate(run: RunContext, stage_dir: Path) -> dict:
    """Accuracy of the float model and of every passed artifact, on the test split, for each label mode."""
    from edge_fer.compare import run_batches
    from edge_fer.data.preprocess import to_model_input
    from edge_fer.evaluate import classification_metrics, flip_rate
    from edge_fer.runtimes import runtime_for

    section = run.config.evaluate
    if run.config.cross_validation.folds > 1:
        return evaluate_folds(run, stage_dir)
    candidates = [run.stage_dir("train")]
    if "export" in run.config.stages:
        candidates += exported_artifacts(run)
    scored = scoring_spec(run).label_mode
    modes = [scored] + [m for m in section.label_modes if m != scored]
    results = {}
    for mode in modes:
        dataset = dataset_spec(run, mode).load()
        split = dataset.splits[section.split]
        probabilities = {}
        for artifact in candidates:
            name = "keras" if artifact.is_dir() else artifact.name.removeprefix("model-").rsplit(".", 1)[0]
            with runtime_for(artifact, threads=section.threads) as runner:
                probabilities[name] = run_batches(runner, to_model_input(split.images, runner.input_spec.height), 64)
        results[dataset.label_mode or "default"] = {
            name: {**classification_metrics(split.labels, probs, dataset.classes, split.votes),
                   "flip_rate": flip_rate(probabilities["keras"], probs)} for name, probs in probabilities.items()}
    atomic.write_json(stage_dir / "evaluate.json", results)
    first = results[next(iter(results))]
    rows = [[name, m["accuracy"], m["macro_f1"], min((v for v in m["per_class_accuracy"].values() if v is not None), default=None)]
            for name, m in first.items()]
    ui.err.print(ui.table(f"evaluate on {run.config.data.dataset} {section.split}", ["model", "accuracy", "macro-F1", "worst class"], rows))
    return {"summary": {name: round(m["accuracy"], 4) for name, m in first.items()}, "metrics": results}


def evaluate_folds(run: RunContext, stage_dir: Path) -> dict:
    """Each fold's model on its own held-out subjects; mean and standard deviation across folds."""
    from edge_fer.evaluate import classification_metrics, predict_keras
    from edge_fer.models.loading import load_model

    per_fold = []
    for fold in range(run.config.cross_validation.folds):
        model, meta = load_model(run.stage_dir("train") / f"fold-{fold}")
        data = fold_data(run, fold)
        dataset = DatasetSpec.of(data).load()
        split = dataset.splits["test"]
        per_fold.append(classification_metrics(split.labels, predict_keras(model, split.images, meta["image_size"]), dataset.classes))
    result = {"folds": per_fold, "accuracy": mean_std([m["accuracy"] for m in per_fold]),
              "macro_f1": mean_std([m["macro_f1"] for m in per_fold])}
    atomic.write_json(stage_dir / "evaluate.json", result)
    ui.err.print(f"{len(per_fold)}-fold accuracy {result['accuracy']['mean']:.4f} ± {result['accuracy']['std']:.4f}")
    return {"summary": {"accuracy_mean": result["accuracy"]["mean"], "accuracy_std": result["accuracy"]["std"]}, "metrics": result}


def store_path(run: RunContext) -> Path:
    return Path(run.config.bench.store) if run.config.bench.store else run.folder / "results.sqlite"


def bench_settings(run: RunContext):
    from edge_fer.bench.runner import BenchSettings

    section = run.config.bench
    return BenchSettings(warmup_queries=section.warmup_queries, min_queries=section.min_queries,
                         min_duration_s=section.min_duration_s, offline_batch=section.offline_batch,
                         offline_min_duration_s=section.offline_min_duration_s,
                         rounds=section.rounds, threads=section.threads, store=str(store_path(run)))


def peak_rows(target: str, settings) -> list[dict]:
    """The host's peak MAC rate per runtime and precision (bench.peak), measured like the artifacts."""
    import tempfile

    from edge_fer.bench.peak import write_peak_artifacts
    from edge_fer.bench.runner import bench

    with tempfile.TemporaryDirectory() as folder:
        return bench(write_peak_artifacts(Path(folder)), target, settings, None)


def stage_bench(run: RunContext, stage_dir: Path) -> dict:
    from edge_fer.bench.runner import bench

    section, settings = run.config.bench, bench_settings(run)
    rows = bench(exported_artifacts(run, section.time_failed_check) + [Path(name) for name in section.artifacts],
                 section.target, settings,
                 scoring_spec(run) if section.score else None)
    if section.peak:
        rows += peak_rows(section.target, settings)
    atomic.write_json(stage_dir / "bench.json", rows)
    return {"summary": {bench_name(r, rows): {"status": r["status"], "p50_ms": r.get("p50_ms"),
                                             "accuracy": r.get("accuracy")} for r in rows}}


def bench_name(row: dict, rows: list[dict]) -> str:
    """A row's name in the stage summary: its format, or folder:format where files of several folders were benched."""
    from edge_fer.artifacts import run_of
    from edge_fer.bench.peak import PEAK_VARIANT

    if row.get("variant") == PEAK_VARIANT:
        return f"peak {row['format']}"
    folders = {run_of(r["artifact"]) for r in rows if r.get("variant") != PEAK_VARIANT}
    return f"{run_of(row['artifact'])}:{row['format']}" if len(folders) > 1 else row["format"]


def mean_std(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0, "values": values}


def precision_section(run: RunContext, stage_dir: Path, wanted: dict, files: str) -> tuple[str, str, Path]:
    """report.precision: `edge-fer debug precision` of one file on the validation split, its ten layers that add
    the most quantization noise as a table, and its plot (copied beside the report)."""
    from edge_fer.debug.precision import LayerRow, debug_precision, ranked
    from edge_fer.report.tables import markdown_table

    artifact, reference = Path(wanted.get("artifact", "")), Path(wanted.get("reference", ""))
    if not artifact.is_file() or not reference.exists():
        raise UserError("report.precision needs artifact = a quantized file and reference = its float model, both "
                        f"existing (got {str(artifact)!r} and {str(reference)!r})")
    valid = scoring_spec(run).load().splits["valid"]
    result = debug_precision(artifact, reference, valid.images[: int(wanted.get("images", 200))], stage_dir / "precision")
    rows = ranked([LayerRow(**row) for row in result["layers"]])[:10]
    table = markdown_table(["layer", "op", "noise added", "SQNR dB", "cosine"],
                           [[row.layer, row.op, f"{100 * row.noise_share:.1f}%", f"{row.sqnr_db:.1f}",
                             None if row.cosine is None else f"{row.cosine:.4f}"] for row in rows])
    body = (f"`edge-fer debug precision {artifact} --reference {reference}` on {result['images']} validation images: every "
            "layer's output against the float model's; the layers that add the most quantization noise first.\n\n"
            f"{table}\n\n![quantization error by layer]({files}/precision-by-layer.png)")
    return f"Where {artifact.name} loses accuracy", body, Path(result["plot"])


def stage_report(run: RunContext, stage_dir: Path) -> dict:
    from edge_fer.report import build_report, sections

    section, config = run.config.report, run.config
    out = Path(section.out) if section.out else stage_dir
    extras = [extra for extra in (sections.training_section(run.stage_dir("train")),
                                  sections.evaluate_section(run.stage_dir("evaluate") / "evaluate.json", config.evaluate.split),
                                  sections.baselines_section(config.name, run.folder, section.baselines, config.evaluate.split))
              if extra]
    extras += sections.included_sections(section.include)
    figures = []
    if section.precision:
        title, body, figure = precision_section(run, stage_dir, section.precision, f"{section.name}_files")
        extras.append((title, body))
        figures.append(figure)
    report = build_report(store_path(run), out, commands=run.commands + section.commands, name=section.name,
                          extras=extras, references=sections.load_references(section.references), figures=figures)
    atomic.write_json(stage_dir / "report.json", {"out": str(out), "runs": len(report["history"])})
    return {"summary": {"report": report["markdown"]}}


def store_intact(run: RunContext) -> bool:
    """A results store replaced or corrupted since the bench ran sends the bench stage to run again."""
    from edge_fer.bench import store

    return store.intact(store_path(run))


def note_data(stage: dict) -> str:
    sizes = stage.get("sizes")
    return ", ".join(f"{k} {v}" for k, v in sizes.items())[:60] if isinstance(sizes, dict) else ""


def note_accuracy(stage: dict) -> str:
    if "accuracy" not in stage or not isinstance(stage["accuracy"], float):
        return ""
    scratch = ", from scratch" if stage["stage"] == "train" and stage.get("pretrained") is False else ""
    return f"test accuracy {stage['accuracy']:.4f}{scratch}"


def note_export(stage: dict) -> str:
    formats = stage.get("formats") or {}
    return ", ".join(f"{count} {status}" for status, count in Counter(formats.values()).items())


def note_evaluate(stage: dict) -> str:
    scores = {k: v for k, v in stage.items() if k not in ("stage", "status", "seconds") and isinstance(v, float)}
    if not scores:
        return ""
    best = max(scores, key=scores.get)
    return f"{len(scores)} models, best {scores[best]:.4f} ({best})"


def note_bench(stage: dict) -> str:
    rows = {k: v for k, v in stage.items() if isinstance(v, dict) and not k.startswith("peak ")}
    if not rows:
        return ""
    passed = sum(1 for v in rows.values() if v.get("status") == PASSED)
    return f"{passed} of {len(rows)} artifacts measured" + (", host peak" if any(k.startswith("peak ") for k in stage) else "")


def note_report(stage: dict) -> str:
    return str(stage.get("report") or "")


@dataclass(frozen=True)
class Stage:
    name: str
    upstream: tuple[str, ...]  # stages whose outputs it reads (their output hashes are its inputs)
    sections: tuple[str, ...]  # settings sections that decide its output (its settings hash)
    run: Callable[[RunContext, Path], dict]
    note: Callable[[dict], str]  # a short human line from its summary
    once_per_sweep: bool = False  # in a sweep: runs once, over every point's outputs
    intact: Callable[[RunContext], bool] | None = None  # what it made outside its folder is still there


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("data", (), ("data",), stage_data, note_data),
    Stage("train", ("data",), ("data", "model", "train"), stage_train, note_accuracy),
    Stage("qat", ("train",), ("qat",), stage_qat, note_accuracy),
    Stage("export", ("train", "qat"), ("export",), stage_export, note_export),
    Stage("evaluate", ("train", "export"), ("evaluate",), stage_evaluate, note_evaluate),
    Stage("bench", ("export",), ("bench",), stage_bench, note_bench, once_per_sweep=True, intact=store_intact),
    Stage("report", ("bench",), ("report",), stage_report, note_report, once_per_sweep=True),
)
STAGES = tuple(stage.name for stage in STAGE_TABLE)


def get_stage(name: str) -> Stage:
    return next(stage for stage in STAGE_TABLE if stage.name == name)
