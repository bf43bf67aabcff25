"""`edge-fer export`: every requested format from the FORMATS table, each checked against the Keras model.

Each format ends with a status: passed, failed-check (exported, but parity is below its floor), failed
(the export itself broke: the reason is kept) or skipped (needs a GPU that is not here). The run goes on.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_fer import atomic, ui
from edge_fer.artifacts import embed_onnx_metadata, file_sha256, write_metadata
from edge_fer.compare import agreement, run_batches
from edge_fer.data.spec import DatasetSpec
from edge_fer.errors import UserError
from edge_fer.export import converters
from edge_fer.export.builders import BUILDERS
from edge_fer.export.engines import EngineBuilder, build_engine, choose_engine_builder
from edge_fer.export.mixed import require_keep_float
from edge_fer.formats import PARITY_FLOORS, ExportFormat, parse_formats
from edge_fer.status import FAILED, FAILED_CHECK, PASSED, SKIPPED

COLOUR_DATASET_MESSAGE = "the dataset has colour images; grey formats are made only from grey datasets"


@dataclass
class ExportSettings:
    formats: str = "cpu"  # 'cpu' or 'all' (then '-name' items leave formats out), or a comma-separated list
    calibration_images: int = 300
    parity_images: int = 500
    opset: int = converters.DEFAULT_OPSET
    threads: int | None = None
    target: str | None = None  # TensorRT builds read their settings from this target profile
    seed: int = 0
    floors: dict = field(default_factory=lambda: dict(PARITY_FLOORS))
    keep_float: list | str = field(default_factory=list)  # mixed formats: Keras layers left in float, or "auto:N"
    keep_float_chosen: dict | None = None  # how debug.auto resolved "auto:N" into keep_float's names


class ExportContext:
    """What the converters need, each built once and only when a format asks for it."""

    def __init__(self, model_dir: Path, qat_dir: Path | None, settings: ExportSettings, dataset_override: DatasetSpec | dict | None):
        from edge_fer.models.loading import load_model

        self.model_dir, self.qat_dir, self.settings = model_dir, qat_dir, settings
        self.float_model, self.meta = load_model(model_dir)
        self.image_size = int(self.float_model.input_shape[1])
        if not (dataset_override or self.meta.get("dataset")):
            raise UserError(f"{model_dir} has no model.json naming its dataset; pass --dataset (and --root)")
        self.dataset_spec = DatasetSpec.of(dataset_override or self.meta["dataset"])

    @functools.cached_property
    def dataset(self):
        return self.dataset_spec.load()

    def raw_sample(self, split_names, count: int) -> np.ndarray:
        split = next((self.dataset.splits[s] for s in split_names if s in self.dataset.splits), None)
        if split is None:
            raise UserError(f"dataset {self.dataset.name} has none of the splits {split_names}")
        order = np.random.default_rng(self.settings.seed).permutation(len(split))[:count]
        return split.images[np.sort(order)]

    def _sample(self, split_names, count: int) -> np.ndarray:
        from edge_fer.data.preprocess import to_model_input

        return to_model_input(self.raw_sample(split_names, count), self.image_size)

    @functools.cached_property
    def dataset_is_grey(self) -> bool:
        return all(split.images.shape[-1] == 1 for split in self.dataset.splits.values())

    @functools.cached_property
    def calibration(self) -> np.ndarray:
        return self._sample(("train",), self.settings.calibration_images)

    @functools.cached_property
    def parity_images(self) -> np.ndarray:
        return self._sample(("test", "valid"), self.settings.parity_images)

    def predictions(self, model) -> np.ndarray:
        images = self.parity_images
        return np.concatenate([np.asarray(model(images[i:i + 64], training=False)) for i in range(0, len(images), 64)])

    @functools.cached_property
    def reference(self) -> np.ndarray:
        return self.predictions(self.float_model)

    @functools.cached_property
    def qat_reference(self) -> np.ndarray:
        return self.predictions(self.qat_model)

    def require_qat_dir(self) -> Path:
        if self.qat_dir is None:
            raise UserError("this format is built from the QAT model: run `edge-fer qat` and pass --qat DIR")
        return self.qat_dir

    @functools.cached_property
    def qat_model(self):
        from edge_fer.quantize.qat import load_qat_model

        return load_qat_model(self.require_qat_dir())[0]

    @functools.cached_property
    def macs(self) -> int:
        from edge_fer.models.summary import model_summary

        return model_summary(self.float_model)["macs"]

    @functools.cached_property
    def target(self):
        from edge_fer.targets import load_target

        return load_target(self.settings.target) if self.settings.target else None

    @functools.cached_property
    def engine_builder(self) -> EngineBuilder:
        return choose_engine_builder(self.target)

    @property
    def tensorrt_support(self):
        from edge_fer.targets.tensorrt_support import get_support

        return get_support(self.engine_builder.tensorrt)

    @property
    def opset(self) -> int:
        """The requested opset, lowered to what the target's TensorRT parser imports (8.2: 13)."""
        return min(self.settings.opset, self.tensorrt_support.max_opset)

    @functools.cached_property
    def onnx_fp32(self):
        return converters.keras_to_onnx(self.float_model, self.opset)

    @functools.cached_property
    def keep_float(self) -> list[str]:
        """The Keras layers the mixed formats keep in float."""
        from edge_fer.export.mixed import parse_keep_float

        request = parse_keep_float(self.settings.keep_float)
        if not isinstance(request, list):
            raise UserError(f"export.keep_float = \"auto:{request}\" is resolved by the choose_keep_float export() "
                            "takes (edge_fer.debug.auto.resolve_keep_float: the CLI and pipelines pass it)")
        return request

    @functools.cached_property
    def keep_float_nodes(self) -> list[str]:
        """The ONNX nodes those layers became in onnx_fp32."""
        return converters.onnx_nodes_of_layers(self.onnx_fp32, self.keep_float)

    @functools.cached_property
    def qat_tflite_float_io(self) -> bytes:
        return converters.keras_to_tflite(self.qat_model, "int8", self.calibration, int8_io=False)


def artifact_record(ctx: ExportContext, export_format: ExportFormat) -> dict:
    from edge_fer.data.preprocess import PREPROCESSING
    from edge_fer.versions import software_versions

    if export_format.source == "qat":
        from edge_fer.quantize.qat import WEIGHTS_FILE

        source_file = ctx.require_qat_dir() / WEIGHTS_FILE
    else:
        source_file = ctx.model_dir / "model.keras" if ctx.model_dir.is_dir() else ctx.model_dir
    meta = ctx.meta
    return {
        "format": export_format.name, "precision": export_format.precision, "runtime": export_format.runtime,
        "macs": ctx.macs,
        "classes": meta.get("classes"), "image_size": ctx.image_size,
        "input_shape": [ctx.image_size, ctx.image_size, 1 if export_format.grey else 3],
        "preprocessing": meta.get("preprocessing", PREPROCESSING), "variant": meta.get("variant"),
        "pretrained": meta.get("pretrained"), "dataset": meta.get("dataset"),
        "source": export_format.source, "source_model": str(source_file), "source_model_sha256": file_sha256(source_file),
        "calibration_images": ctx.settings.calibration_images if export_format.calibrated else None,
        **(mixed_record(ctx, export_format) if export_format.keeps_float else {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": software_versions(),
    }


def mixed_record(ctx: ExportContext, export_format: ExportFormat) -> dict:
    chosen = ctx.settings.keep_float_chosen
    record = {"keep_float": ctx.keep_float, **({"keep_float_chosen": chosen} if chosen else {})}
    if export_format.suffix == ".onnx":
        record["keep_float_nodes"] = ctx.keep_float_nodes
    return record


def tensorrt_rule_check(ctx: ExportContext, payload, float_nodes=()) -> dict:
    """The TensorRT rules on an ONNX file, for the target's TensorRT (or the one here, or 10.x)."""
    from edge_fer.export.tensorrt_rules import check_tensorrt

    target = ctx.target
    dla = target is not None and target.tensorrt.dla_core is not None
    report = check_tensorrt(payload, ctx.tensorrt_support, dla=dla, gpu_fallback=target.tensorrt.gpu_fallback if target else True,
                            float_nodes=frozenset(float_nodes))
    return report.as_dict()


def export_one(ctx: ExportContext, export_format: ExportFormat, out: Path) -> dict:
    from edge_fer.runtimes import create_runtime

    path = out / export_format.file_name
    started = time.perf_counter()
    record = artifact_record(ctx, export_format)
    if export_format.needs_gpu:
        record["engine"] = build_engine(ctx, export_format, out, path)
    else:
        payload = BUILDERS.get(export_format.name)(ctx)
        if export_format.suffix == ".onnx":
            import onnx

            proto = onnx.load_from_string(payload)
            record["tensorrt_check"] = tensorrt_rule_check(ctx, proto, record.get("keep_float_nodes", ()))
            payload = embed_onnx_metadata(proto, record).SerializeToString()
        atomic.write_bytes(path, payload)
    record["file_sha256"] = file_sha256(path)
    record["size_bytes"] = path.stat().st_size
    record["export_seconds"] = round(time.perf_counter() - started, 1)
    with create_runtime(export_format.runtime, path, threads=ctx.settings.threads) as runner:
        probabilities = run_batches(runner, ctx.parity_images)
    # Parity checks the conversion: against the Keras model the artifact was built from (the QAT model for
    # QAT formats). Agreement with the float model is reported beside it: QAT itself changes some predictions.
    from_qat = export_format.source == "qat"
    parity = agreement(export_format.name, ctx.qat_reference if from_qat else ctx.reference, probabilities).as_dict()
    with_float = agreement(export_format.name, ctx.reference, probabilities).as_dict()
    floor = ctx.settings.floors.get(export_format.precision, 0.0)
    record["parity"] = {**parity, "floor": floor, "reference": "keras QAT model" if from_qat else "keras float model"}
    record["agreement_with_float"] = with_float["top1_agreement"]
    write_metadata(path, record)
    status = PASSED if parity["top1_agreement"] >= floor else FAILED_CHECK
    trt_check = record.get("tensorrt_check") or {"passed": True}
    reason = None
    if not trt_check["passed"]:
        status = FAILED_CHECK
        reason = f"TensorRT {trt_check['tensorrt']}: {trt_check['problems'][0]} ({len(trt_check['problems'])} problems)"
    return {"format": export_format.name, "status": status, "reason": reason, "path": str(path), "size_bytes": record["size_bytes"],
            "top1_agreement": parity["top1_agreement"], "max_abs_diff": parity["max_abs_diff"], "floor": floor,
            "reference": record["parity"]["reference"], "agreement_with_float": with_float["top1_agreement"],
            "precision": export_format.precision, "export_seconds": record["export_seconds"]}


def check_settings(settings: ExportSettings) -> None:
    for name, low in (("calibration_images", 1), ("parity_images", 0)):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 100_000:
            raise UserError(f"export.{name} (--{name.replace('_', '-')}) must be a whole number from {low} to 100000, got {value!r}")


def export(model_dir: str | Path, out: str | Path, settings: ExportSettings, qat_dir: str | Path | None = None,
           dataset_override: DatasetSpec | dict | None = None,
           choose_keep_float: Callable[[ExportContext], ExportSettings] | None = None) -> list[dict]:
    """Every format of `settings` from the model in `model_dir`, into `out`. `choose_keep_float` (from a layer above:
    the debugger) turns keep_float = "auto:N" into layer names, given the context this export loaded."""
    from edge_fer.export.tensorrt import NO_GPU_MESSAGE

    formats = parse_formats(settings.formats)
    check_settings(settings)  # before any file is written
    require_keep_float(formats, settings.keep_float)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = ExportContext(Path(model_dir), Path(qat_dir) if qat_dir else None, settings, dataset_override)
    if choose_keep_float is not None:
        ctx.settings = settings = choose_keep_float(ctx)
    gpu_here = any(f.needs_gpu for f in formats) and ctx.engine_builder.kind is not None
    skipped = {f.name: NO_GPU_MESSAGE for f in formats if f.needs_gpu and not gpu_here}
    skipped |= {f.name: COLOUR_DATASET_MESSAGE for f in formats if f.grey and not ctx.dataset_is_grey}
    results = []
    with ui.progress() as bar:
        task = bar.add_task("exporting", total=len(formats))
        for export_format in formats:
            bar.update(task, description=f"exporting {export_format.name}")
            if export_format.name in skipped:
                results.append({"format": export_format.name, "status": SKIPPED, "reason": skipped[export_format.name]})
            else:
                results.append(export_guarded(ctx, export_format, out))
            bar.advance(task)
    report = {"model": str(model_dir), "qat_model": str(qat_dir) if qat_dir else None, "settings": settings.__dict__,
              "parity_images": int(len(ctx.parity_images)) if any(r["status"] != SKIPPED for r in results) else 0,
              "results": results}
    atomic.write_json(out / "export.json", report)
    return results


def export_guarded(ctx: ExportContext, export_format: ExportFormat, out: Path) -> dict:
    try:
        return export_one(ctx, export_format, out)
    except UserError as error:
        return {"format": export_format.name, "status": FAILED, "reason": str(error)}
    except Exception as error:  # a converter bug must not stop the other formats
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return {"format": export_format.name, "status": FAILED, "reason": last[:500]}


