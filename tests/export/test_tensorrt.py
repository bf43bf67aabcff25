"""TensorRT without a GPU: configuration from target profiles, trtexec command lines, the builder settings
applied to a stand-in `trt` module. Building and running a real engine is marked gpu."""

from types import SimpleNamespace

import numpy as np
import pytest

from edge_fer.errors import UserError
from edge_fer.export import tensorrt
from edge_fer.export.tensorrt import EngineBuildConfig, configure_builder, trtexec_bench_command, trtexec_build_command
from edge_fer.targets import load_target


def test_config_from_a_jetson_with_dla():
    config = EngineBuildConfig.from_target(load_target("jetson-agx-orin"), "int8", 224)
    assert config.dla_core == 0 and config.workspace_mb == 4096
    assert (config.min_batch, config.opt_batch, config.max_batch) == (1, 1, 1)  # DLA: a static profile
    assert config.builder_flags() == ["INT8", "FP16", "GPU_FALLBACK"]
    assert config.shape(16) == (16, 224, 224, 3)
    fp32 = EngineBuildConfig.from_target(load_target("jetson-agx-orin"), "fp32", 224)
    assert fp32.dla_core is None and fp32.builder_flags() == [] and fp32.max_batch == 16  # DLA has no fp32: GPU, 1..16


def test_desktop_gpu_and_refusals():
    config = EngineBuildConfig.from_target(load_target("rtx-4090"), "fp16", 112, input_name="serving_default_pixels:0")
    assert config.dla_core is None and config.builder_flags() == ["FP16"] and config.max_batch == 64
    with pytest.raises(UserError, match="does not support TensorRT int8"):
        EngineBuildConfig.from_target(load_target("jetson-nano"), "int8", 224)


def test_trtexec_command_lines():
    config = EngineBuildConfig.from_target(load_target("jetson-orin-nano"), "int8", 112)
    assert trtexec_build_command("m.onnx", "m.engine", config) == [
        "trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--memPoolSize=workspace:1024M",
        "--minShapes=pixels:1x112x112x3", "--optShapes=pixels:1x112x112x3", "--maxShapes=pixels:8x112x112x3",
        "--builderOptimizationLevel=3", "--int8", "--fp16"]
    dla = EngineBuildConfig.from_target(load_target("jetson-agx-orin"), "fp16", 224)
    dla.timing_cache = "/tmp/cache.bin"
    command = trtexec_build_command("a.onnx", "a.engine", dla)
    assert command[-4:] == ["--fp16", "--useDLACore=0", "--allowGPUFallback", "--timingCacheFile=/tmp/cache.bin"]
    assert "--maxShapes=pixels:1x224x224x3" in command
    assert trtexec_bench_command("a.engine", dla, batch=1, duration_s=7) == [
        "trtexec", "--loadEngine=a.engine", "--shapes=pixels:1x224x224x3", "--warmUp=500", "--duration=7",
        "--percentile=90,95,99", "--useSpinWait", "--useDLACore=0"]


class Recorder:
    """Stands in for trt objects: records every attribute set and method called."""

    def __init__(self, log, name):
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_name", name)

    def __setattr__(self, key, value):
        self._log.append((f"{self._name}.{key}", value))

    def __getattr__(self, key):
        def call(*args, **kwargs):
            self._log.append((f"{self._name}.{key}()", args))
            return Recorder(self._log, key)
        return call


def fake_trt():
    names = lambda *keys: SimpleNamespace(**{key: key for key in keys})  # noqa: E731
    return SimpleNamespace(MemoryPoolType=names("WORKSPACE"), BuilderFlag=names("FP16", "INT8", "GPU_FALLBACK"),
                           DeviceType=names("DLA", "GPU"), ProfilingVerbosity=names("DETAILED"))


def test_builder_configuration_applied_to_the_api():
    log = []
    builder = Recorder(log, "builder")
    network = SimpleNamespace(get_input=lambda index: SimpleNamespace(name="pixels"))
    config = EngineBuildConfig.from_target(load_target("jetson-agx-orin"), "int8", 224)
    configure_builder(fake_trt(), builder, network, config)
    calls = dict((name, value) for name, value in log)
    assert ("create_builder_config.set_memory_pool_limit()", ("WORKSPACE", 4096 << 20)) in log
    assert [value for name, value in log if name.endswith("set_flag()")] == [("INT8",), ("FP16",), ("GPU_FALLBACK",)]
    assert calls["create_builder_config.default_device_type"] == "DLA" and calls["create_builder_config.DLA_core"] == 0
    assert ("create_optimization_profile.set_shape()", ("pixels", (1, 224, 224, 3), (1, 224, 224, 3), (1, 224, 224, 3))) in log
    assert calls["create_builder_config.builder_optimization_level"] == 3
    assert calls["create_builder_config.profiling_verbosity"] == "DETAILED"  # so the built precision can be read back


def test_a_gpu_and_trtexec_are_detected_where_they_are_and_only_there(monkeypatch, tmp_path):
    """One expected outcome per branch: nothing on PATH and no JetPack folder; JetPack's trtexec; an nvidia-smi."""
    monkeypatch.setattr(tensorrt.shutil, "which", lambda name: None)
    monkeypatch.setattr(tensorrt, "JETPACK_TRTEXEC", str(tmp_path / "usr/src/tensorrt/bin/trtexec"))
    assert tensorrt.gpu_info() is None and tensorrt.find_trtexec() is None
    jetpack = tmp_path / "usr/src/tensorrt/bin/trtexec"
    jetpack.parent.mkdir(parents=True)
    jetpack.write_text("#!/bin/sh\n")
    assert tensorrt.find_trtexec() == str(jetpack)
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 8.9, 550.54.14'\n")
    smi.chmod(0o755)
    monkeypatch.setattr(tensorrt.shutil, "which", lambda name: str(smi) if name == "nvidia-smi" else None)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    assert tensorrt.gpu_info() == {"gpu": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9", "driver": "550.54.14"}


def test_trtexec_is_found_on_path_in_jetpack_or_where_the_target_says(monkeypatch, tmp_path):
    monkeypatch.setattr(tensorrt.shutil, "which", lambda name: None)
    monkeypatch.setattr(tensorrt, "JETPACK_TRTEXEC", str(tmp_path / "usr/src/tensorrt/bin/trtexec"))
    assert tensorrt.find_trtexec() is None
    (tmp_path / "usr/src/tensorrt/bin").mkdir(parents=True)
    (tmp_path / "usr/src/tensorrt/bin/trtexec").write_text("")
    assert tensorrt.find_trtexec() == str(tmp_path / "usr/src/tensorrt/bin/trtexec")
    monkeypatch.setattr(tensorrt.shutil, "which", lambda name: "/opt/trt/bin/trtexec")
    assert tensorrt.find_trtexec() == "/opt/trt/bin/trtexec"
    assert tensorrt.find_trtexec(str(tmp_path / "missing")) is None  # a configured path is used or nothing
    monkeypatch.setattr(tensorrt, "find_trtexec", lambda configured=None: None)
    with pytest.raises(UserError, match="trtexec not found"):
        tensorrt.onnx_to_engine_trtexec("m.onnx", tmp_path / "m.engine", EngineBuildConfig("fp16"))


def _engine_inputs(results, precision):
    import tensorrt as trt

    from edge_fer.targets.tensorrt_support import get_support

    source = results[tensorrt.engine_source(precision, get_support(trt.__version__))]["path"]
    return source, EngineBuildConfig(precision, image_size=64, input_name=tensorrt_input_name(source),
                                     max_batch=8, tensorrt=trt.__version__)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("builder", ["python-api", "trtexec"])
def test_engines_build_run_and_agree_on_this_gpu(exported, tmp_path, precision, builder):
    """Batch 1 and a batch of 8, against onnx-fp32, at the exporter's own agreement floors."""
    from edge_fer.compare import agreement, run_batches
    from edge_fer.formats import PARITY_FLOORS as DEFAULT_FLOORS
    from edge_fer.runtimes import runtime_for

    _, results = exported
    images = np.random.default_rng(0).uniform(0, 255, (24, 64, 64, 3)).astype(np.float32)
    with runtime_for(results["onnx-fp32"]["path"]) as reference:
        expected = run_batches(reference, images)
    source, config = _engine_inputs(results, precision)
    engine = tmp_path / f"model-tensorrt-{precision}.engine"
    if builder == "trtexec":
        if tensorrt.find_trtexec() is None:
            pytest.skip("no trtexec on this GPU machine")
        tensorrt.onnx_to_engine_trtexec(source, engine, config)
    else:
        engine.write_bytes(tensorrt.onnx_to_engine(source, config))
    (engine.with_name(engine.name + ".json")).write_text('{"format": "tensorrt-%s"}' % precision)
    with runtime_for(engine) as runner:
        single = np.concatenate([runner.infer(image[None]) for image in images[:8]])
        batched = run_batches(runner, images)
    floor = DEFAULT_FLOORS[precision]
    assert agreement(precision, expected, batched).top1_agreement >= floor
    assert agreement(precision, expected[:8], single).top1_agreement >= floor


@pytest.mark.gpu
def test_timing_cache_round_trips(exported, tmp_path):
    _, results = exported
    source, config = _engine_inputs(results, "fp16")
    config.timing_cache = str(tmp_path / "timing.cache")
    first = tensorrt.onnx_to_engine(source, config)
    size = (tmp_path / "timing.cache").stat().st_size
    assert size > 0 and first
    assert tensorrt.onnx_to_engine(source, config)  # the second build reads the cache it wrote
    assert (tmp_path / "timing.cache").stat().st_size >= size


def tensorrt_input_name(path):
    import onnx

    return onnx.load(str(path)).graph.input[0].name


def test_engine_command_plans_per_target_and_refuses_without_a_gpu(exported, capsys, monkeypatch, tmp_path):
    import json

    from edge_fer.cli import main

    root, _ = exported
    artifacts = root / "artifacts"
    assert main(["engine", str(artifacts), "--precision", "int8", "--target", "jetson-agx-orin", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    # DLA runs no Q/DQ graph: int8 by implicit quantization, the QDQ file's scales in a calibration cache
    assert plan["onnx"].endswith("model-onnx-int8-qdq.dla.onnx") and plan["rule_check"]["passed"] and plan["tensorrt"] == "8.6"
    implicit = plan["implicit_quantization"]
    assert implicit["from"].endswith("model-onnx-int8-qdq.onnx") and implicit["scales"] > 10
    command = plan["trtexec_command"]
    assert f"--calib={implicit['calibration_cache']}" in command and "--int8" in command
    assert "--useDLACore=0" in command and any(a.startswith("--maxShapes=") and ":1x64x64x3" in a for a in command)
    assert plan["python_api"]["builder_flags"] == ["INT8", "FP16", "GPU_FALLBACK"]
    assert main(["engine", str(artifacts), "--precision", "fp16", "--tensorrt", "11", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["onnx"].endswith("model-onnx-fp16.onnx") and "--fp16" not in plan["trtexec_command"]

    monkeypatch.setattr(tensorrt, "tensorrt_available", lambda: False)
    monkeypatch.setattr(tensorrt, "find_trtexec", lambda configured=None: None)
    assert main(["engine", str(artifacts), "--precision", "fp16", "--out", str(tmp_path / "m.engine")]) == 2
    assert "no NVIDIA GPU" in capsys.readouterr().err and not list(tmp_path.iterdir())
