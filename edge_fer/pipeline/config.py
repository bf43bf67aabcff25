"""The pipeline file: which stages run, and each stage's settings. Validated before any work starts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edge_fer.data.tfdata import AugmentConfig
from edge_fer.errors import UserError
from edge_fer.pipeline.stages import STAGES
from edge_fer.registry import closest
from edge_fer.train.config import DataSection, ModelSection, TrainSection

DEFAULT_PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "quickstart.toml"


@dataclass
class QatSection:
    epochs: int = 2
    learning_rate: float = 1e-5
    batch_size: int = 32
    steps_per_epoch: int | None = None
    freeze_batchnorm: bool = True
    calibration_steps: int = 500  # forward passes that settle the quantization ranges before fine-tuning
    symmetric: bool = False  # true: train with TensorRT's symmetric ranges (the ONNX export converts either way)
    seed: int | None = None  # None: train.seed
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ExportSection:
    formats: str = "cpu"
    calibration_images: int = 300
    parity_images: int = 500
    target: str | None = None
    threads: int | None = None
    keep_float: list | str = field(default_factory=list)  # mixed formats: Keras layers left in float, or "auto:N"


@dataclass
class EvaluateSection:
    split: str = "test"
    label_modes: list = field(default_factory=list)  # extra label modes to score, e.g. ["argmax"] for FERPlus
    threads: int | None = None


@dataclass
class BenchSection:
    target: str = "host-cpu"
    min_queries: int = 200
    min_duration_s: float = 5.0
    warmup_queries: int = 20
    offline_batch: int = 32
    offline_min_duration_s: float = 3.0  # seconds of Offline (batched) timing per artifact at least
    rounds: int = 1  # >1: the SingleStream time split into interleaved rounds across artifacts (a drifting host)
    threads: int | None = None
    store: str | None = None  # default: runs/<name>/results.sqlite
    score: bool = True  # score every artifact on the test split during the benchmark
    peak: bool = False  # also measure the host's peak MAC rate (the report's MAC share column)
    time_failed_check: bool = False  # also time artifacts that failed their parity check (latency-only pipelines)
    artifacts: list = field(default_factory=list)  # files benched beside the pipeline's own exports (committed ones)


@dataclass
class ReportSection:
    out: str | None = None  # default: runs/<name>/report
    name: str = "report"  # report.md and report.html
    include: list = field(default_factory=list)  # Markdown files appended as sections (e.g. other benchmarks)
    commands: list = field(default_factory=list)  # further commands behind the report, listed after the pipeline's
    baselines: list = field(default_factory=list)  # run folders of other pipelines whose float models are compared
    references: list = field(default_factory=list)  # peer results (benchmarks/fer_peer.py JSON) drawn on the plot
    # {artifact = "...tflite", reference = "model folder"}: where that int8 file loses accuracy, layer by layer
    # (edge-fer debug precision on the validation split), as a section with its plot
    precision: dict = field(default_factory=dict)


@dataclass
class CrossValidationSection:
    folds: int = 0  # > 1: train and evaluate once per subject-independent fold, then mean and std


@dataclass
class SweepSection:
    """Many runs from one file. grid: dotted key -> values, every combination is a point named
    <name>-<key><value>-...; points: explicit [{name = ..., set = {dotted key = value}}] (ablations). Each point
    runs the stages up to evaluate in its own run folder (cached and resumable as usual); bench and report then
    run once over every point's artifacts, so their latencies come from one session."""

    grid: dict = field(default_factory=dict)
    points: list = field(default_factory=list)


@dataclass
class PipelineConfig:
    name: str = "pipeline"
    stages: list = field(default_factory=lambda: list(STAGES))
    runs: str = "runs"
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    qat: QatSection = field(default_factory=QatSection)
    export: ExportSection = field(default_factory=ExportSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    bench: BenchSection = field(default_factory=BenchSection)
    report: ReportSection = field(default_factory=ReportSection)
    cross_validation: CrossValidationSection = field(default_factory=CrossValidationSection)
    sweep: SweepSection = field(default_factory=SweepSection)

    @property
    def folder(self) -> Path:
        return Path(self.runs) / self.name


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_paths(config: PipelineConfig, here: Path) -> None:
    """Outputs stay where the user put them: the run name is a plain folder name (runs/<name>), a relative
    output may not climb out of this folder (an absolute one is the user's explicit choice), and report.include
    copies only Markdown files from inside this folder into the report."""
    here = here.resolve()
    if not RUN_NAME.fullmatch(config.name):
        raise UserError(f"name = {config.name!r} must be a plain folder name (letters, digits, '.', '_', '-'): "
                        "the run goes to runs/<name>")
    if not RUN_NAME.fullmatch(config.report.name):
        raise UserError(f"report.name = {config.report.name!r} must be a plain file name (letters, digits, '.', '_', "
                        "'-'): the report is <report.out>/<name>.md; choose the folder with report.out")
    for key, value in (("runs", config.runs), ("bench.store", config.bench.store), ("report.out", config.report.out)):
        if value and not Path(value).is_absolute() and not (here / value).resolve().is_relative_to(here):
            raise UserError(f"{key} = {value!r} leaves {here}; give a path inside it, or an absolute path")
    for key, files, suffix, kind in (("report.include", config.report.include, ".md", "a Markdown file"),
                                     ("report.references", config.report.references, ".json", "a JSON file")):
        for name in files:
            path = (here / name).resolve()
            if not path.is_relative_to(here) or path.suffix != suffix:
                raise UserError(f"{key}: {name!r} must be {kind} inside {here}")


def check_bench_artifacts(artifacts: list) -> None:
    from edge_fer.formats import format_of_name

    for name in artifacts:
        if not isinstance(name, str) or not Path(name).is_file() or format_of_name(Path(name).name) is None:
            raise UserError(f"bench.artifacts: {name!r} is not an exported file; list .tflite, .onnx or .engine files")


def validate(config: PipelineConfig, base: Path) -> None:
    """Every check that needs no heavy work: stage names, dataset (and its root), variant, formats, target, paths."""
    from edge_fer.data import get_adapter
    from edge_fer.export.mixed import require_keep_float
    from edge_fer.formats import parse_formats
    from edge_fer.models import MODELS
    from edge_fer.targets import load_target
    from edge_fer.train.config import check_label_drawing, check_recipe
    from edge_fer.train.distribute import distribute_mode

    check_paths(config, Path.cwd())
    for stage in config.stages:
        if stage not in STAGES:
            raise UserError(f"unknown stage {stage!r}{closest(stage, STAGES)}; stages: {', '.join(STAGES)}")
    adapter = get_adapter(config.data.dataset)
    if config.data.root is not None:
        config.data.root = str((base / config.data.root).resolve()) if not Path(config.data.root).is_absolute() else config.data.root
    adapter(config.data.root, label_mode=config.data.label_mode, **config.data.options)  # root, mode, options
    for mode in config.evaluate.label_modes:
        if mode not in adapter.label_modes:
            raise UserError(f"evaluate.label_modes: {mode!r} is not a label mode of {adapter.name} ({', '.join(adapter.label_modes)})")
    MODELS.get(config.model.variant)
    check_label_drawing(config.train.draw_labels, config.data.label_mode)
    check_recipe(config.train)
    require_keep_float(parse_formats(config.export.formats), config.export.keep_float)
    check_bench_artifacts(config.bench.artifacts)
    load_target(config.bench.target)
    if config.export.target:
        load_target(config.export.target)
    if distribute_mode(config.train.distribute) == "multi_worker" and (config.sweep.grid or config.sweep.points
                                                                         or config.cross_validation.folds > 1):
        raise UserError("train.distribute = 'multi_worker' trains one model: not in a sweep or cross-validation; "
                        "run `edge-fer run PIPELINE --workers HOST:PORT,... --task-index N` per point")
    if config.cross_validation.folds and config.data.dataset != "ckplus":
        raise UserError("cross_validation.folds needs the ckplus dataset (subject-independent folds)")
