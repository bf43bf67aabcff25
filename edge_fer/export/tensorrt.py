"""TensorRT engines from ONNX: the Python builder API or `trtexec`, configured from a target profile.

An engine belongs to the GPU and TensorRT version that built it, so the record beside it names both.
Everything but the actual build runs without a GPU (and is tested so). What each TensorRT version accepts
(builder flags, trtexec flags, strong typing) comes from one table, tensorrt_support.SUPPORT.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_fer.errors import UserError
from edge_fer.targets import Target
from edge_fer.targets.tensorrt_support import TensorRTSupport, get_support, version_from_trtexec_banner

NO_GPU_MESSAGE = "no NVIDIA GPU with TensorRT here; engines must be built on the device that runs them"


JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs trtexec (not on PATH)


@dataclass
class EngineBuildConfig:
    precision: str  # fp32, fp16, int8 (int8 expects a QDQ ONNX: explicit quantization)
    workspace_mb: int = 1024
    dla_core: int | None = None
    gpu_fallback: bool = True
    builder_optimization_level: int = 3
    timing_cache: str | None = None
    input_name: str = "pixels"
    image_size: int = 224
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8
    tensorrt: str | None = None  # the TensorRT version that builds it (None: the table's default, 10.x)
    calibration_cache: str | None = None  # implicit int8 (DLA): the scales, from the QDQ file (export/dla.py)
    fp16_layers: tuple = ()  # a mixed file's float nodes (ONNX node = TensorRT layer names), constrained to fp16

    @classmethod
    def from_target(cls, target: Target, precision: str, image_size: int, input_name: str = "pixels", **overrides):
        settings = target.tensorrt
        if precision not in settings.precisions:
            raise UserError(f"target {target.name} does not support TensorRT {precision} (it has {', '.join(settings.precisions)})")
        dla_core = settings.dla_core
        if dla_core is not None and not 0 <= dla_core < max(target.device.dla_cores, 0):
            raise UserError(f"target {target.name} has {target.device.dla_cores} DLA cores; dla_core {dla_core} does not exist")
        if dla_core is not None and precision == "fp32":
            dla_core = None  # DLA runs fp16 and int8 only
        batches = (settings.min_batch, settings.opt_batch, settings.max_batch)
        if dla_core is not None:
            batches = (1, 1, 1)  # DLA needs min = opt = max; a dynamic profile sends every layer to the GPU
        config = cls(precision=precision, workspace_mb=settings.workspace_mb, dla_core=dla_core,
                     gpu_fallback=settings.gpu_fallback, builder_optimization_level=settings.builder_optimization_level,
                     timing_cache=settings.timing_cache, input_name=input_name, image_size=image_size,
                     min_batch=batches[0], opt_batch=batches[1], max_batch=batches[2], tensorrt=target.device.tensorrt)
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config

    @property
    def support(self) -> TensorRTSupport:
        return get_support(self.tensorrt)

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.image_size, self.image_size, 3)

    def builder_flags(self) -> list[str]:
        """Names of trt.BuilderFlag to set. INT8 comes with FP16 so layers outside Q/DQ pairs (softmax) may
        run in half precision rather than fall back to fp32. A strongly typed TensorRT (11.x) has neither flag:
        the ONNX's own types decide (an fp16 ONNX for fp16, the QDQ file for int8)."""
        flags = [] if self.support.strongly_typed else {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[self.precision]
        if self.fp16_layers and not self.support.strongly_typed:
            flags.append("PREFER_PRECISION_CONSTRAINTS")
        if self.dla_core is not None and self.gpu_fallback:
            flags.append("GPU_FALLBACK")
        return flags

    def layer_constraints(self, builder: str) -> str:
        """What the plan does with a mixed file's float layers, in words for the engine's record."""
        if not self.fp16_layers:
            return "none"
        if self.support.strongly_typed:
            return (f"none: TensorRT {self.support.label} is strongly typed, so the {len(self.fp16_layers)} float layers "
                    "run in the ONNX file's fp32")
        if builder == "trtexec" and not self.support.layer_precisions:
            return (f"none: TensorRT {self.support.label}'s trtexec has no --layerPrecisions, so the "
                    f"{len(self.fp16_layers)} float layers run fp16 or fp32 as TensorRT picks (the Python API constrains them)")
        return f"fp16 preferred on {len(self.fp16_layers)} layers (PREFER_PRECISION_CONSTRAINTS)"


def layer_precision_spec(layers, precision: str = "fp16") -> str:
    """trtexec's --layerPrecisions value, 'name:fp16,name:fp16'; a name its grammar cannot carry is refused."""
    bad = [name for name in layers if not name or "," in name or ":" in name]
    if bad:
        raise UserError(f"layer {bad[0]!r} cannot be named to trtexec --layerPrecisions (a ',' or ':' in it): "
                        "rename the ONNX node, or build with the Python API")
    return ",".join(f"{name}:{precision}" for name in layers)


def engine_source(precision: str, support: TensorRTSupport) -> str:
    """The ONNX export format an engine of this precision is built from."""
    if precision == "int8":
        return "onnx-int8-qdq"
    return "onnx-fp16" if precision == "fp16" and support.strongly_typed else "onnx-fp32"


def trtexec_build_command(onnx_path: Path, engine_path: Path, config: EngineBuildConfig, trtexec: str = "trtexec",
                          layer_info: Path | None = None) -> list[str]:
    """The trtexec command line that builds the same engine as the Python API (an argument list, no shell),
    with only the flags config.tensorrt's trtexec parses."""
    support = config.support
    shape = lambda batch: f"{config.input_name}:" + "x".join(map(str, config.shape(batch)))  # noqa: E731
    workspace = f"--memPoolSize=workspace:{config.workspace_mb}M" if support.memory_pool_api else f"--workspace={config.workspace_mb}"
    command = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_path}", workspace,
               f"--minShapes={shape(config.min_batch)}", f"--optShapes={shape(config.opt_batch)}",
               f"--maxShapes={shape(config.max_batch)}"]
    if support.optimization_level:
        command.append(f"--builderOptimizationLevel={config.builder_optimization_level}")
    command += [f"--{flag.lower()}" for flag in config.builder_flags() if flag in ("FP16", "INT8")]
    if config.dla_core is not None:
        command.append(f"--useDLACore={config.dla_core}")
        if config.gpu_fallback:
            command.append("--allowGPUFallback")
    if config.calibration_cache:
        command.append(f"--calib={config.calibration_cache}")
    if config.fp16_layers and support.layer_precisions:
        command += ["--precisionConstraints=prefer", f"--layerPrecisions={layer_precision_spec(config.fp16_layers)}"]
    if config.timing_cache:
        command.append(f"--timingCacheFile={config.timing_cache}")
    if layer_info is not None and support.layer_info:
        command += ["--profilingVerbosity=detailed", f"--exportLayerInfo={layer_info}"]
    return command


def implicit_int8(config: EngineBuildConfig) -> bool:
    """DLA int8 is built by implicit quantization: a Q/DQ-free ONNX and a calibration cache, not the QDQ file.
    A TensorRT without implicit quantization (11.x) cannot build it: one line."""
    if config.precision != "int8" or config.dla_core is None:
        return False
    if not config.support.implicit_int8:
        raise UserError(f"TensorRT {config.support.label} has no implicit quantization, which DLA int8 needs: build int8 "
                        "for the GPU (no dla_core), or fp16 on the DLA")
    return True


def trtexec_bench_command(engine_path: Path, config: EngineBuildConfig, batch: int = 1, duration_s: int = 10,
                          warmup_ms: int = 500, trtexec: str = "trtexec") -> list[str]:
    shape = f"{config.input_name}:" + "x".join(map(str, config.shape(batch)))
    percentiles = "90,95,99" if config.support.percentile_list else "99"
    command = [trtexec, f"--loadEngine={engine_path}", f"--shapes={shape}", f"--warmUp={warmup_ms}",
               f"--duration={duration_s}", f"--percentile={percentiles}", "--useSpinWait"]
    if config.dla_core is not None:
        command.append(f"--useDLACore={config.dla_core}")
    return command


def tensorrt_available() -> bool:
    """The TensorRT Python package and an NVIDIA GPU."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return gpu_info() is not None


def find_trtexec(configured: str | None = None) -> str | None:
    """The trtexec to run: the target's `trtexec` path, then PATH, then JetPack's /usr/src/tensorrt/bin."""
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("trtexec") or (JETPACK_TRTEXEC if Path(JETPACK_TRTEXEC).is_file() else None)


def trtexec_version(trtexec: str) -> str | None:
    """The version a trtexec reports in its banner ('&&&& RUNNING TensorRT.trtexec [TensorRT v8602]')."""
    try:
        result = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return version_from_trtexec_banner(result.stdout + result.stderr)


def gpu_info() -> dict | None:
    """Name and compute capability of GPU 0, from nvidia-smi; None where there is no NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        line = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=True).stdout.strip().splitlines()[0]
    except (subprocess.SubprocessError, IndexError, OSError):
        return None
    name, capability, driver = (part.strip() for part in line.split(","))
    return {"gpu": name, "compute_capability": capability, "driver": driver}


def engine_record(config: EngineBuildConfig, builder: str, tensorrt_version: str | None, inspected: dict | None = None) -> dict:
    """What makes an engine valid: the GPU and TensorRT version that built it, and how. The version is the
    builder's own (the Python package's, or the one trtexec printed), so a trtexec build needs no Python TensorRT.
    The precision is the built engine's own where it could be read back (inspected), else the request's."""
    inspected = inspected or {"precision_built": None, "precision_source": "not read back"}
    return {"tensorrt": tensorrt_version, **(gpu_info() or {}), "builder": builder, "build_config": asdict(config),
            "precision": config.precision, "layer_constraints": config.layer_constraints(builder), **inspected}


def configure_builder(trt, builder, network, config: EngineBuildConfig):
    """A trt.IBuilderConfig for `config` (workspace, precision flags, DLA, profile, timing cache), using only
    the API the installed TensorRT has (config.tensorrt is that version)."""
    support = config.support
    builder_config = builder.create_builder_config()
    if support.memory_pool_api:
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    else:
        builder_config.max_workspace_size = config.workspace_mb << 20
    if support.optimization_level:
        builder_config.builder_optimization_level = config.builder_optimization_level
    builder_config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer data types readable afterwards
    for flag in config.builder_flags():
        builder_config.set_flag(getattr(trt.BuilderFlag, flag))
    if config.dla_core is not None:
        builder_config.default_device_type = trt.DeviceType.DLA
        builder_config.DLA_core = config.dla_core
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, config.shape(config.min_batch), config.shape(config.opt_batch),
                      config.shape(config.max_batch))
    builder_config.add_optimization_profile(profile)
    cache_bytes = Path(config.timing_cache).read_bytes() if config.timing_cache and Path(config.timing_cache).is_file() else b""
    timing_cache = builder_config.create_timing_cache(cache_bytes)
    builder_config.set_timing_cache(timing_cache, ignore_mismatch=False)
    return builder_config, timing_cache


def constrain_layers(trt, network, config: EngineBuildConfig) -> None:
    """The mixed file's float layers set to fp16 (obeyed as far as TensorRT can: PREFER_PRECISION_CONSTRAINTS).
    TensorRT names each layer after its ONNX node; a named layer the network lacks is an error, not a silent
    fp32 layer."""
    if not config.fp16_layers or config.support.strongly_typed:
        return
    wanted = set(config.fp16_layers)
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.name in wanted:
            layer.precision = trt.float16
            wanted.discard(layer.name)
    if wanted:
        raise UserError(f"the ONNX file's record keeps {len(wanted)} nodes float that TensorRT's network does not have "
                        f"(first {sorted(wanted)[0]!r}): re-export the mixed file")


def network_flags(trt, support: TensorRTSupport) -> int:
    """8.x needs EXPLICIT_BATCH; 10.x removed implicit batch (the flag is 0); 11.x is strongly typed always."""
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if support.explicit_batch_flag else 0


def check_version_matches(builder_version: str, planned: str | None, builder: str) -> None:
    """Flags and the ONNX source were chosen for `planned`; a builder of another TensorRT family would build
    something else (11.x ignores precision flags: an fp32 engine labelled fp16). One line, and no build."""
    from edge_fer.targets.tensorrt_support import same_family

    if planned and not same_family(builder_version, planned):
        raise UserError(f"{builder} is TensorRT {builder_version} but the plan is for TensorRT {planned}: install "
                        f"TensorRT {planned} or set [device] tensorrt = \"{builder_version}\" in the target file; nothing built")


def installed_tensorrt() -> str | None:
    """The tensorrt Python package's version, GPU or not."""
    try:
        import tensorrt
    except ImportError:
        return None
    return str(getattr(tensorrt, "__version__", "") or "") or None


def inspect_precision(trt, serialized: bytes) -> dict:
    """The built engine's layer data types and what they make it, read back through IEngineInspector."""
    import json

    from edge_fer.engine_info import built_precision, layer_datatypes

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(serialized)
    inspector = engine.create_engine_inspector()
    counts = layer_datatypes(json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)))
    return {"layer_datatypes": counts, "precision_built": built_precision(counts), "precision_source": "IEngineInspector"}


def onnx_to_engine(onnx_path: Path, config: EngineBuildConfig) -> bytes:
    """Build a serialized engine with the installed TensorRT's Python API."""
    return onnx_to_engine_inspected(onnx_path, config)[0]


def onnx_to_engine_inspected(onnx_path: Path, config: EngineBuildConfig) -> tuple[bytes, dict]:
    """The serialized engine and its precision as read back from it."""
    import tensorrt as trt

    check_version_matches(trt.__version__, config.tensorrt, "the tensorrt Python package")
    config.tensorrt = trt.__version__
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, config.support))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    constrain_layers(trt, network, config)
    builder_config, timing_cache = configure_builder(trt, builder, network, config)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build a {config.precision} engine from {onnx_path}")
    if config.timing_cache:
        Path(config.timing_cache).write_bytes(bytes(timing_cache.serialize()))
    return bytes(serialized), inspect_precision(trt, bytes(serialized))


def onnx_to_engine_trtexec(onnx_path: Path, engine_path: Path, config: EngineBuildConfig, trtexec: str | None = None,
                           layer_info: Path | None = None) -> str:
    """Build with trtexec (where that is what the device has); returns trtexec's log."""
    trtexec = trtexec or find_trtexec()
    if trtexec is None:
        raise UserError(f"trtexec not found on PATH or at {JETPACK_TRTEXEC}; install TensorRT or set "
                        "trtexec = PATH in the target's [tensorrt] section")
    result = subprocess.run(trtexec_build_command(onnx_path, engine_path, config, trtexec, layer_info), capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"trtexec failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout
