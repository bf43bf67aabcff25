"""TensorRT engines from exported ONNX files: which builder and version (the Python API or trtexec), the plan
`edge-fer engine --dry-run` prints, and the build with its precision check and parity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_fer import atomic
from edge_fer.artifacts import file_sha256, read_metadata, write_metadata
from edge_fer.compare import agreement, run_batches
from edge_fer.errors import UserError
from edge_fer.export.mixed import float_nodes_of
from edge_fer.formats import PARITY_FLOORS, ExportFormat


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


def build_engine(ctx, export_format: ExportFormat, out: Path, path: Path) -> dict:
    from edge_fer.export import tensorrt

    plan = ctx.engine_builder
    source = export_format.engine_from or tensorrt.engine_source(export_format.precision, ctx.tensorrt_support)
    onnx_path = out / f"model-{source}.onnx"
    if not onnx_path.is_file():
        raise UserError(f"{export_format.name} is built from {onnx_path.name}: export {source} too")
    input_name = _onnx_input_name(onnx_path)
    if ctx.target is not None:
        config = tensorrt.EngineBuildConfig.from_target(ctx.target, export_format.precision, ctx.image_size, input_name)
    else:  # the GPU on this machine, with the defaults
        config = tensorrt.EngineBuildConfig(export_format.precision, image_size=ctx.image_size, input_name=input_name,
                                            tensorrt=plan.tensorrt)
    config.fp16_layers = float_nodes_of(read_metadata(onnx_path))
    return build_engine_file(onnx_path, path, config, plan)


def build_engine_file(onnx_path: Path, out: Path, config, plan: EngineBuilder) -> dict:
    """One engine written atomically by the planned builder; returns its record (the version is the builder's)."""
    from edge_fer.engine_info import precision_from_layer_info
    from edge_fer.export import tensorrt
    from edge_fer.targets.tensorrt_support import version_from_trtexec_banner

    if plan.kind == "trtexec":
        layer_info = atomic.partial_path(out.with_name(f"{out.name}.layers.json"))
        try:
            with atomic.replacing(out) as temporary:
                log = tensorrt.onnx_to_engine_trtexec(onnx_path, temporary, config, plan.trtexec, layer_info)
                inspected = precision_from_layer_info(layer_info)
        finally:
            layer_info.unlink(missing_ok=True)
        return tensorrt.engine_record(config, "trtexec", version_from_trtexec_banner(log) or config.tensorrt, inspected)
    serialized, inspected = tensorrt.onnx_to_engine_inspected(onnx_path, config)
    atomic.write_bytes(out, serialized)
    return tensorrt.engine_record(config, "python-api", config.tensorrt, inspected)


def _onnx_input_name(onnx_path: Path) -> str:

    from edge_fer.export.tensorrt_rules import read_onnx

    return read_onnx(onnx_path).graph.input[0].name


def engine_plan(source: Path, precision: str, target_name: str | None = None, builder: str | None = None,
                tensorrt_version: str | None = None) -> dict:
    """What `edge-fer engine` will do, without building: the ONNX it builds from, the TensorRT version and
    builder, the rule check, the trtexec command line and the Python API settings."""
    from edge_fer.export import tensorrt
    from edge_fer.export.tensorrt_rules import check_tensorrt, check_tensorrt_file
    from edge_fer.targets import load_target
    from edge_fer.targets.tensorrt_support import get_support

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
    if precision == "int8":
        config.fp16_layers = float_nodes_of(meta)
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
            "layer_constraints": config.layer_constraints(plan.kind or "trtexec"),
            "trtexec_command": tensorrt.trtexec_build_command(build_from, Path("ENGINE"), config, trtexec),
            "python_api": {"network_flags": "EXPLICIT_BATCH" if support.explicit_batch_flag else "0 (explicit batch always)",
                           "strongly_typed": support.strongly_typed, "builder_flags": config.builder_flags(),
                           "workspace": ("set_memory_pool_limit(WORKSPACE, " if support.memory_pool_api
                                         else "max_workspace_size = (") + f"{config.workspace_mb} MiB)",
                           "builder_optimization_level": config.builder_optimization_level if support.optimization_level else None,
                           "profile": [config.shape(config.min_batch), config.shape(config.opt_batch), config.shape(config.max_batch)],
                           "dla_core": config.dla_core,
                           "fp16_layers": len(config.fp16_layers) if not support.strongly_typed else 0}}


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
        atomic.write_bytes(path, data)
    built = build_engine_file(onnx_path, out, config, plan["plan"])
    if built.get("precision_built") and built["precision_built"] != config.precision:
        out.unlink()
        raise UserError(f"asked for a {config.precision} engine but the engine TensorRT {built['tensorrt']} built from "
                        f"{onnx_path.name} runs {built['precision_built']} layers ({built.get('layer_datatypes')}); "
                        f"strongly typed TensorRT takes its precision from the ONNX file: give the {config.precision} one")
    engine_format = "tensorrt-mixed" if config.fp16_layers else f"tensorrt-{config.precision}"
    record = {**plan["meta"], "format": engine_format, "precision": config.precision, "runtime": "tensorrt",
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
        floor = PARITY_FLOORS[config.precision]
        record["parity"] = {**parity, "floor": floor, "reference": str(reference), "images": int(len(images))}
    write_metadata(out, record)
    return record
