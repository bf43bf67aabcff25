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
    assert config.dla_core == 0 and config.workspace_mb == 4096 and config.max_batch == 16
    assert config.builder_flags() == ["INT8", "FP16", "GPU_FALLBACK"]
    assert config.shape(16) == (16, 224, 224, 3)
    fp32 = EngineBuildConfig.from_target(load_target("jetson-agx-orin"), "fp32", 224)
    assert fp32.dla_core is None and fp32.builder_flags() == []  # DLA has no fp32


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
    assert trtexec_bench_command("a.engine", dla, batch=4, duration_s=7) == [
        "trtexec", "--loadEngine=a.engine", "--shapes=pixels:4x224x224x3", "--warmUp=500", "--duration=7",
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
                           DeviceType=names("DLA", "GPU"))


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
    assert ("create_optimization_profile.set_shape()", ("pixels", (1, 224, 224, 3), (1, 224, 224, 3), (16, 224, 224, 3))) in log
    assert calls["create_builder_config.builder_optimization_level"] == 3


def test_no_gpu_here_is_detected(monkeypatch):
    monkeypatch.setattr(tensorrt.shutil, "which", lambda name: None)
    assert tensorrt.gpu_info() is None
    assert tensorrt.trtexec_available() is None or tensorrt.trtexec_available().startswith("/usr/src")


@pytest.mark.gpu
def test_build_and_run_engines_on_this_gpu(exported, tmp_path):
    from edge_fer.compare import agreement, run_batches
    from edge_fer.runtimes import runtime_for

    root, results = exported
    images = np.random.default_rng(0).uniform(0, 255, (16, 64, 64, 3)).astype(np.float32)
    with runtime_for(results["onnx-fp32"]["path"]) as reference:
        expected = run_batches(reference, images)
    for precision, source in (("fp16", "onnx-fp32"), ("int8", "onnx-int8-qdq")):
        config = EngineBuildConfig(precision, image_size=64, input_name=tensorrt_input_name(results[source]["path"]))
        engine = tmp_path / f"model-tensorrt-{precision}.engine"
        engine.write_bytes(tensorrt.onnx_to_engine(results[source]["path"], config))
        with runtime_for(engine) as runner:
            assert agreement(precision, expected, run_batches(runner, images)).top1_agreement >= 0.9


def tensorrt_input_name(path):
    import onnx

    return onnx.load(str(path)).graph.input[0].name
