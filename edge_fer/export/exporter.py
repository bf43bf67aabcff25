"""`edge-fer export`: every requested format from the FORMATS table, each checked against the Keras model.

Each format ends with a status: passed, failed-check (exported, but parity is below its floor), failed
(the export itself broke: the reason is kept) or skipped (needs a GPU that is not here). The run goes on.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_fer import ui
from edge_fer.compare import agreement, run_batches
from edge_fer.errors import UserError
from edge_fer.export import converters
from edge_fer.formats import ExportFormat, parse_formats
from edge_fer.artifacts import atomic_write_bytes, embed_onnx_metadata, file_sha256, read_metadata, write_metadata

COLOUR_DATASET_MESSAGE = "the dataset has colour images; grey formats are made only from grey datasets"
DEFAULT_FLOORS = {"fp32": 0.99, "fp16": 0.99, "dynamic": 0.99, "int8": 0.97}


@dataclass
class ExportSettings:
    formats: str = "cpu"  # 'cpu', 'all' or a comma-separated list
    calibration_images: int = 300
    parity_images: int = 500
    opset: int = converters.DEFAULT_OPSET
    threads: int | None = None
    target: str | None = None  # TensorRT builds read their settings from this target profile
    seed: int = 0
    floors: dict = field(default_factory=lambda: dict(DEFAULT_FLOORS))


class ExportContext:
    """What the converters need, each built once and only when a format asks for it."""

    def __init__(self, model_dir: Path, qat_dir: Path | None, settings: ExportSettings, dataset_override: dict | None):
        from edge_fer.models.loading import load_model

        self.model_dir, self.qat_dir, self.settings = model_dir, qat_dir, settings
        self.float_model, self.meta = load_model(model_dir)
        self.image_size = int(self.float_model.input_shape[1])
        self.dataset_spec = dataset_override or self.meta.get("dataset")
        if not self.dataset_spec:
            raise UserError(f"{model_dir} has no model.json naming its dataset; pass --dataset (and --root)")

    @functools.cached_property
    def dataset(self):
        from edge_fer.data import load_dataset

        spec = self.dataset_spec
        return load_dataset(spec["name"], spec.get("root"), label_mode=spec.get("label_mode"), **(spec.get("options") or {}))

    def _sample(self, split_names, count: int) -> np.ndarray:
        from edge_fer.data.preprocess import to_model_input

        split = next((self.dataset.splits[s] for s in split_names if s in self.dataset.splits), None)
        if split is None:
            raise UserError(f"dataset {self.dataset.name} has none of the splits {split_names}")
        order = np.random.default_rng(self.settings.seed).permutation(len(split))[:count]
        return to_model_input(split.images[np.sort(order)], self.image_size)

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
        from edge_fer.export.tensorrt_support import get_support

        return get_support(self.engine_builder.tensorrt)

    @property
    def opset(self) -> int:
        """The requested opset, lowered to what the target's TensorRT parser imports (8.2: 13)."""
        return min(self.settings.opset, self.tensorrt_support.max_opset)

    @functools.cached_property
    def onnx_fp32(self):
        return converters.keras_to_onnx(self.float_model, self.opset)

    @functools.cached_property
    def qat_tflite_float_io(self) -> bytes:
        return converters.keras_to_tflite(self.qat_model, "int8", self.calibration, int8_io=False)


@dataclass
class EngineBuilder:
    kind: str | None  # "python-api", "trtexec", or None: nothing here can build engines
    tensorrt: str | None  # the version that builds (None: the support table's default)
    trtexec: str | None = None  # trtexec's path, for kind "trtexec"


def builder_version(found: str | None, target, builder: str) -> str | None:
    """The version flags are planned for: the builder's own where one is here (refused in one line if the target
    says another TensorRT family), else the target's, for a plan built elsewhere."""
    from edge_fer.export import tensorrt

    if found is None:
        return target.device.tensorrt
    tensorrt.check_version_matches(found, target.device.tensorrt, builder)
    return found


def choose_engine_builder(target) -> EngineBuilder:
    """A target says which TensorRT and which builder; without one, the Python API where the tensorrt package
    and a GPU are here, else a trtexec found on PATH or in JetPack's folder (its version read from its banner)."""
    from edge_fer.export import tensorrt

    if target is not None:
        if target.tensorrt.use_trtexec:
            path = tensorrt.find_trtexec(target.tensorrt.trtexec)
            return EngineBuilder("trtexec", builder_version(path and tensorrt.trtexec_version(path), target, f"trtexec ({path})"),
                                 path)
        installed = tensorrt.installed_tensorrt()
        version = builder_version(installed, target, "the tensorrt Python package")
        return EngineBuilder("python-api" if tensorrt.tensorrt_available() else None, version)
    if tensorrt.tensorrt_available():
        return EngineBuilder("python-api", tensorrt.installed_tensorrt())
    trtexec = tensorrt.find_trtexec()
    if trtexec is not None:
        return EngineBuilder("trtexec", tensorrt.trtexec_version(trtexec), trtexec)
    return EngineBuilder(None, None)


def build_onnx_qdq(ctx: ExportContext) -> bytes:
    """The QAT model through TFLite's int8 converter to QDQ ONNX, then into TensorRT's form (biases float, every
    zero point 0): the QAT ranges reach onnxruntime and TensorRT unchanged where they are symmetric."""
    qdq = converters.tflite_to_onnx(ctx.qat_tflite_float_io, ctx.opset)
    return converters.qdq_to_tensorrt_qdq(qdq).SerializeToString()


BUILDERS = {  # format name -> bytes of the artifact (TensorRT engines are built in build_engine)
    "tflite-fp32": lambda ctx: converters.keras_to_tflite(ctx.float_model, "fp32"),
    "tflite-fp16": lambda ctx: converters.keras_to_tflite(ctx.float_model, "fp16"),
    "tflite-dynamic": lambda ctx: converters.keras_to_tflite(ctx.float_model, "dynamic"),
    "tflite-int8": lambda ctx: converters.keras_to_tflite(ctx.float_model, "int8", ctx.calibration),
    "tflite-int8-qat": lambda ctx: converters.keras_to_tflite(ctx.qat_model, "int8", ctx.calibration),
    "tflite-int8-grey": lambda ctx: converters.keras_to_tflite_float_stem(converters.keras_to_grey_keras(ctx.float_model),
                                                                          ctx.calibration[..., :1]),
    "onnx-fp32": lambda ctx: ctx.onnx_fp32.SerializeToString(),
    "onnx-fp16": lambda ctx: converters.onnx_to_fp16(ctx.onnx_fp32).SerializeToString(),
    "onnx-int8-qdq": build_onnx_qdq,
    "onnx-int8-ptq": lambda ctx: converters.onnx_to_int8_ptq(ctx.onnx_fp32, ctx.calibration).SerializeToString(),
}


def artifact_record(ctx: ExportContext, export_format: ExportFormat) -> dict:
    from edge_fer.train.trainer import PREPROCESSING
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
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": software_versions(),
    }


def build_engine(ctx: ExportContext, export_format: ExportFormat, out: Path, path: Path) -> dict:
    from edge_fer.export import tensorrt

    plan = ctx.engine_builder
    source = tensorrt.engine_source(export_format.precision, ctx.tensorrt_support)
    onnx_path = out / f"model-{source}.onnx"
    if not onnx_path.is_file():
        raise UserError(f"{export_format.name} is built from {onnx_path.name}: export {source} too")
    input_name = _onnx_input_name(onnx_path)
    if ctx.target is not None:
        config = tensorrt.EngineBuildConfig.from_target(ctx.target, export_format.precision, ctx.image_size, input_name)
    else:  # the GPU on this machine, with the defaults
        config = tensorrt.EngineBuildConfig(export_format.precision, image_size=ctx.image_size, input_name=input_name,
                                            tensorrt=plan.tensorrt)
    return build_engine_file(onnx_path, path, config, plan)


def build_engine_file(onnx_path: Path, out: Path, config, plan: EngineBuilder) -> dict:
    """One engine written atomically by the planned builder; returns its record (the version is the builder's)."""
    from edge_fer.engine_info import precision_from_layer_info
    from edge_fer.export import tensorrt
    from edge_fer.export.tensorrt_support import version_from_trtexec_banner

    if plan.kind == "trtexec":
        temporary = out.with_name(f".partial-{out.name}")
        layer_info = out.with_name(f".partial-{out.name}.layers.json")
        try:
            log = tensorrt.onnx_to_engine_trtexec(onnx_path, temporary, config, plan.trtexec, layer_info)
            inspected = precision_from_layer_info(layer_info)
        finally:
            layer_info.unlink(missing_ok=True)
        temporary.replace(out)
        return tensorrt.engine_record(config, "trtexec", version_from_trtexec_banner(log) or config.tensorrt, inspected)
    serialized, inspected = tensorrt.onnx_to_engine_inspected(onnx_path, config)
    atomic_write_bytes(out, serialized)
    return tensorrt.engine_record(config, "python-api", config.tensorrt, inspected)


def tensorrt_rule_check(ctx: ExportContext, payload) -> dict:
    """The TensorRT rules on an ONNX file, for the target's TensorRT (or the one here, or 10.x)."""
    from edge_fer.export.tensorrt_rules import check_tensorrt

    target = ctx.target
    dla = target is not None and target.tensorrt.dla_core is not None
    report = check_tensorrt(payload, ctx.tensorrt_support, dla=dla, gpu_fallback=target.tensorrt.gpu_fallback if target else True)
    return report.as_dict()


def _onnx_input_name(onnx_path: Path) -> str:

    from edge_fer.export.tensorrt_rules import read_onnx

    return read_onnx(onnx_path).graph.input[0].name


def export_one(ctx: ExportContext, export_format: ExportFormat, out: Path) -> dict:
    from edge_fer.runtimes import create_runtime

    path = out / export_format.file_name
    started = time.perf_counter()
    record = artifact_record(ctx, export_format)
    if export_format.needs_gpu:
        record["engine"] = build_engine(ctx, export_format, out, path)
    else:
        payload = BUILDERS[export_format.name](ctx)
        if export_format.suffix == ".onnx":
            import onnx

            proto = onnx.load_from_string(payload)
            record["tensorrt_check"] = tensorrt_rule_check(ctx, proto)
            payload = embed_onnx_metadata(proto, record).SerializeToString()
        atomic_write_bytes(path, payload)
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
    status = "passed" if parity["top1_agreement"] >= floor else "failed-check"
    trt_check = record.get("tensorrt_check") or {"passed": True}
    reason = None
    if not trt_check["passed"]:
        status = "failed-check"
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
           dataset_override: dict | None = None) -> list[dict]:
    from edge_fer.export.tensorrt import NO_GPU_MESSAGE

    formats = parse_formats(settings.formats)
    check_settings(settings)  # before any file is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = ExportContext(Path(model_dir), Path(qat_dir) if qat_dir else None, settings, dataset_override)
    gpu_here = any(f.needs_gpu for f in formats) and ctx.engine_builder.kind is not None
    skipped = {f.name: NO_GPU_MESSAGE for f in formats if f.needs_gpu and not gpu_here}
    skipped |= {f.name: COLOUR_DATASET_MESSAGE for f in formats if f.grey and not ctx.dataset_is_grey}
    results = []
    with ui.progress() as bar:
        task = bar.add_task("exporting", total=len(formats))
        for export_format in formats:
            bar.update(task, description=f"exporting {export_format.name}")
            if export_format.name in skipped:
                results.append({"format": export_format.name, "status": "skipped", "reason": skipped[export_format.name]})
            else:
                results.append(export_guarded(ctx, export_format, out))
            bar.advance(task)
    report = {"model": str(model_dir), "qat_model": str(qat_dir) if qat_dir else None, "settings": settings.__dict__,
              "parity_images": int(len(ctx.parity_images)) if any(r["status"] != "skipped" for r in results) else 0,
              "results": results}
    atomic_write_bytes(out / "export.json", json.dumps(report, indent=2, default=str).encode())
    return results


def export_guarded(ctx: ExportContext, export_format: ExportFormat, out: Path) -> dict:
    try:
        return export_one(ctx, export_format, out)
    except UserError as error:
        return {"format": export_format.name, "status": "failed", "reason": str(error)}
    except Exception as error:  # a converter bug must not stop the other formats
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return {"format": export_format.name, "status": "failed", "reason": last[:500]}


def engine_plan(source: Path, precision: str, target_name: str | None = None, builder: str | None = None,
                tensorrt_version: str | None = None) -> dict:
    """What `edge-fer engine` will do, without building: the ONNX it builds from, the TensorRT version and
    builder, the rule check, the trtexec command line and the Python API settings."""
    from edge_fer.export import tensorrt
    from edge_fer.export.tensorrt_rules import check_tensorrt, check_tensorrt_file
    from edge_fer.export.tensorrt_support import get_support
    from edge_fer.targets import load_target

    target = load_target(target_name) if target_name else None
    plan = choose_engine_builder(target)
    if builder == "trtexec" and plan.kind != "trtexec":
        path = tensorrt.find_trtexec(target.tensorrt.trtexec if target else None)
        found = tensorrt.trtexec_version(path) if path else None  # flags for the trtexec that will run
        if found and (target is not None or plan.tensorrt):
            tensorrt.check_version_matches(found, plan.tensorrt, f"trtexec ({path})")
        plan = EngineBuilder("trtexec", found or plan.tensorrt, path)
    elif builder == "python-api":
        plan = EngineBuilder("python-api" if tensorrt.tensorrt_available() else None, plan.tensorrt)
    if tensorrt_version:
        if plan.kind is not None and plan.tensorrt:
            tensorrt.check_version_matches(plan.tensorrt, tensorrt_version, f"the {plan.kind} builder here")
        plan.tensorrt = tensorrt_version
    support = get_support(plan.tensorrt)
    onnx_path = Path(source)
    if onnx_path.is_dir():
        onnx_path = onnx_path / f"model-{tensorrt.engine_source(precision, support)}.onnx"
    if not onnx_path.is_file():
        raise UserError(f"{onnx_path} does not exist (a TensorRT {support.label} {precision} engine is built from it)")
    meta = read_metadata(onnx_path) or {}
    size = int(meta.get("image_size") or _onnx_input_size(onnx_path))
    input_name = _onnx_input_name(onnx_path)
    if target is not None:
        config = tensorrt.EngineBuildConfig.from_target(target, precision, size, input_name)
        config.tensorrt = plan.tensorrt
    else:
        config = tensorrt.EngineBuildConfig(precision, image_size=size, input_name=input_name, tensorrt=plan.tensorrt)
    dla = config.dla_core is not None
    implicit, files = None, {}
    if tensorrt.implicit_int8(config):  # DLA runs no Q/DQ graph: the QDQ file's scales go into a calibration cache
        from edge_fer.export.dla import qdq_file_to_implicit

        plain, cache = qdq_file_to_implicit(onnx_path, plan.tensorrt or "10.0.0")
        build_from, cache_path = onnx_path.with_name(onnx_path.stem + ".dla.onnx"), onnx_path.with_name(onnx_path.stem + ".dla.cache")
        files = {build_from: plain, cache_path: cache.encode()}
        config.calibration_cache = str(cache_path)
        implicit = {"from": str(onnx_path), "onnx": str(build_from), "calibration_cache": str(cache_path),
                    "scales": len(cache.splitlines()) - 1, "builder_flags": config.builder_flags()}
        check = check_tensorrt(_load_onnx_bytes(plain), support, dla=True, gpu_fallback=config.gpu_fallback)
    else:
        build_from = onnx_path
        check = check_tensorrt_file(onnx_path, support, dla=dla, gpu_fallback=config.gpu_fallback)
    trtexec = plan.trtexec or "trtexec"
    return {"onnx": str(build_from), "precision": precision, "builder": plan.kind, "plan": plan, "tensorrt": support.label,
            "gpu": tensorrt.gpu_info(), "rule_check": check.as_dict(), "meta": meta, "config": config,
            "implicit_quantization": implicit, "files": files,
            "trtexec_command": tensorrt.trtexec_build_command(build_from, Path("ENGINE"), config, trtexec),
            "python_api": {"network_flags": "EXPLICIT_BATCH" if support.explicit_batch_flag else "0 (explicit batch always)",
                           "strongly_typed": support.strongly_typed, "builder_flags": config.builder_flags(),
                           "workspace": ("set_memory_pool_limit(WORKSPACE, " if support.memory_pool_api
                                         else "max_workspace_size = (") + f"{config.workspace_mb} MiB)",
                           "builder_optimization_level": config.builder_optimization_level if support.optimization_level else None,
                           "profile": [config.shape(config.min_batch), config.shape(config.opt_batch), config.shape(config.max_batch)],
                           "dla_core": config.dla_core}}


def _load_onnx_bytes(data: bytes):
    import onnx

    return onnx.load_from_string(data)


def _onnx_input_size(onnx_path: Path) -> int:

    from edge_fer.export.tensorrt_rules import read_onnx

    dims = read_onnx(onnx_path).graph.input[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value)


def engine_from_onnx(plan: dict, out: Path, reference: Path | None = None, images: np.ndarray | None = None) -> dict:
    """Build the engine a plan describes, write it and its metadata, and check it against a reference artifact
    (onnx-fp32) on `images` at the exporter's floors."""
    from edge_fer.export import tensorrt

    if plan["builder"] is None:
        raise UserError(tensorrt.NO_GPU_MESSAGE)
    if not plan["rule_check"]["passed"]:
        problems = plan["rule_check"]["problems"]
        raise UserError(f"{plan['onnx']} fails the TensorRT {plan['tensorrt']} rules ({len(problems)}): {problems[0]}; "
                        f"see `edge-fer check tensorrt {plan['onnx']}`")
    config, onnx_path = plan["config"], Path(plan["onnx"])
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, data in plan.get("files", {}).items():  # the Q/DQ-free ONNX and calibration cache of a DLA int8 build
        atomic_write_bytes(path, data)
    built = build_engine_file(onnx_path, out, config, plan["plan"])
    if built.get("precision_built") and built["precision_built"] != config.precision:
        out.unlink()
        raise UserError(f"asked for a {config.precision} engine but the engine TensorRT {built['tensorrt']} built from "
                        f"{onnx_path.name} runs {built['precision_built']} layers ({built.get('layer_datatypes')}); "
                        f"strongly typed TensorRT takes its precision from the ONNX file: give the {config.precision} one")
    record = {**plan["meta"], "format": f"tensorrt-{config.precision}", "precision": config.precision, "runtime": "tensorrt",
              "source_model": str(onnx_path), "source_model_sha256": file_sha256(onnx_path), "engine": built,
              "file_sha256": file_sha256(out), "size_bytes": out.stat().st_size}
    record.pop("tensorrt_check", None)
    if reference is not None and images is not None:
        from edge_fer.runtimes import runtime_for

        with runtime_for(reference) as runner:
            expected = run_batches(runner, images)
        with runtime_for(out) as runner:
            probabilities = run_batches(runner, images)
        parity = agreement(record["format"], expected, probabilities).as_dict()
        floor = DEFAULT_FLOORS[config.precision]
        record["parity"] = {**parity, "floor": floor, "reference": str(reference), "images": int(len(images))}
    write_metadata(out, record)
    return record
