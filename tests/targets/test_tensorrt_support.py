"""The TensorRT version table against what each version accepts, kept here as separate data from TensorRT's
sources: trtexec's flag parsers (samples/common/sampleOptions.cpp at the 8.2, 8.5, 8.6, 10.x and 11.x tags and
NVIDIA's 8.x->10.x and 10.x->11.x trtexec migration pages) and the Python builder API per version."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_fer.errors import UserError
from edge_fer.export.tensorrt import (
    EngineBuildConfig,
    configure_builder,
    engine_source,
    network_flags,
    trtexec_bench_command,
    trtexec_build_command,
)
from edge_fer.targets import list_targets, load_target
from edge_fer.targets.tensorrt_support import FAMILIES, SUPPORT, family_of, get_support, version_from_trtexec_banner

REPO = Path(__file__).resolve().parents[2]

from tests.fixtures.jetson.trtexec_flags import PERCENTILE_LIST, TRTEXEC_FLAGS  # noqa: E402

BUILDER_FLAGS = {"8.2": {"FP16", "INT8", "GPU_FALLBACK"}, "8.5": {"FP16", "INT8", "GPU_FALLBACK"},
                 "8.6": {"FP16", "INT8", "GPU_FALLBACK"}, "10": {"FP16", "INT8", "GPU_FALLBACK"}, "11": {"GPU_FALLBACK"}}
CONFIG_API = {  # IBuilderConfig attributes each version has (beyond the common ones)
    "8.2": {"max_workspace_size"},
    "8.5": {"max_workspace_size", "set_memory_pool_limit"},
    "8.6": {"max_workspace_size", "set_memory_pool_limit", "builder_optimization_level"},
    "10": {"set_memory_pool_limit", "builder_optimization_level"},
    "11": {"set_memory_pool_limit", "builder_optimization_level"},
}


def test_every_family_has_one_row_and_versions_map_to_it():
    assert FAMILIES == ("8.2", "8.5", "8.6", "10", "11") and len(SUPPORT) == len(set(FAMILIES))
    assert family_of("8.2.1") == "8.2" and family_of("8.5.2.2") == "8.5" and family_of("8.6.2") == "8.6"
    assert family_of("10.3.0") == "10" and family_of("10.x") == "10" and family_of("11.4.1") == "11"
    assert get_support(None).family == "10"
    for unsupported in ("7.1.3", "9.2.0", "8.0.1", "12.0"):
        with pytest.raises(UserError, match="not in the support table"):
            family_of(unsupported)
    with pytest.raises(UserError, match="MAJOR.MINOR"):
        family_of("latest")


def test_trtexec_banner_gives_the_version():
    assert version_from_trtexec_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v8602] # trtexec --help") == "8.6.2"
    assert version_from_trtexec_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec") == "10.3.0"
    assert version_from_trtexec_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec") == "8.2.1"
    assert version_from_trtexec_banner("no banner") is None


def _configs(family):
    support = get_support(family)
    for precision in ("fp32", "fp16", "int8"):
        yield EngineBuildConfig(precision, tensorrt=family, timing_cache="/tmp/t.cache")
        if support.dla and precision != "fp32":
            yield EngineBuildConfig(precision, tensorrt=family, dla_core=0, min_batch=1, opt_batch=1, max_batch=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_trtexec_commands_use_only_flags_that_version_parses(family):
    for config in _configs(family):
        commands = [trtexec_build_command(Path("m.onnx"), Path("m.engine"), config),
                    trtexec_bench_command(Path("m.engine"), config, batch=1)]
        for command in commands:
            flags = [argument.split("=", 1)[0] for argument in command[1:]]
            unknown = set(flags) - TRTEXEC_FLAGS[family]
            assert not unknown, (family, config.precision, unknown)
            percentile = next(a for a in command if a.startswith("--percentile=")) if "--percentile" in flags else None
            if percentile and not PERCENTILE_LIST[family]:
                float(percentile.split("=", 1)[1])  # 8.2/8.5 parse one float
        build = commands[0]
        if get_support(family).strongly_typed:
            assert "--fp16" not in build and "--int8" not in build
        else:
            assert ("--int8" in build) == (config.precision == "int8")
            assert ("--fp16" in build) == (config.precision in ("fp16", "int8"))


class StrictNamespace(SimpleNamespace):
    """A stand-in trt enum namespace: only the members the version has."""


class StrictConfig:
    def __init__(self, allowed, log):
        object.__setattr__(self, "_allowed", allowed | {"set_flag", "add_optimization_profile", "create_timing_cache",
                                                         "set_timing_cache", "default_device_type", "DLA_core",
                                                         "profiling_verbosity"})  # 8.2+: layer information
        object.__setattr__(self, "_log", log)

    def __setattr__(self, key, value):
        assert key in self._allowed, key
        self._log.append((key, value))

    def __getattr__(self, key):
        if key not in self._allowed:
            raise AttributeError(key)
        return lambda *args, **kwargs: self._log.append((key, args))


@pytest.mark.parametrize("family", FAMILIES)
def test_python_builder_uses_only_the_api_that_version_has(family):
    log = []
    trt = SimpleNamespace(MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"), DeviceType=SimpleNamespace(DLA="DLA"),
                          ProfilingVerbosity=StrictNamespace(DETAILED="DETAILED", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY", NONE="NONE"),
                          BuilderFlag=StrictNamespace(**{flag: flag for flag in BUILDER_FLAGS[family]}),
                          NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=0))
    builder = SimpleNamespace(create_builder_config=lambda: StrictConfig(CONFIG_API[family], log),
                              create_optimization_profile=lambda: SimpleNamespace(set_shape=lambda *a: None))
    network = SimpleNamespace(get_input=lambda index: SimpleNamespace(name="pixels"))
    for config in _configs(family):
        config.timing_cache = None
        configure_builder(trt, builder, network, config)
    assert network_flags(trt, get_support(family)) == (1 if get_support(family).explicit_batch_flag else 0)


def test_strongly_typed_fp16_engines_come_from_the_fp16_onnx():
    assert engine_source("fp16", get_support("11")) == "onnx-fp16"
    assert engine_source("fp16", get_support("10")) == "onnx-fp32"
    assert {engine_source("int8", row) for row in SUPPORT} == {"onnx-int8-qdq"}
    assert {engine_source("fp32", row) for row in SUPPORT} == {"onnx-fp32"}


def test_the_tensorrt_extras_are_matched_pairs_of_table_versions():
    from packaging.requirements import Requirement

    from edge_fer.tomllib_compat import loads

    extras = loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["tensorrt"] == extras["tensorrt-cu12"]  # the plain extra: the pair most drivers run
    published = ["8.6.1", "9.3.0.post12", "10.0.1", "10.3.0", "10.13.3.9", "11.0.0.114", "11.4.0.106", "12.0.0"]
    for cuda in ("12", "13"):
        names = {r.name: r for r in map(Requirement, extras[f"tensorrt-cu{cuda}"])}
        assert set(names) == {f"tensorrt-cu{cuda}", "cuda-python"}
        cuda_python = names["cuda-python"].specifier
        assert cuda_python.contains(f"{cuda}.0.0") and not cuda_python.contains(f"{int(cuda) - 1}.9.9") \
            and not cuda_python.contains(f"{int(cuda) + 1}.0.0")
        wheels = names[f"tensorrt-cu{cuda}"].specifier
        for version in published:
            if wheels.contains(version, prereleases=True):
                family_of(version)  # raises where the table does not cover an allowed version
        assert wheels.contains("11.4.0.106") and not wheels.contains("12.0.0")


def test_every_target_names_a_table_version_and_a_sourced_peak():
    for name in list_targets():
        target = load_target(name)
        if target.kind == "cpu":
            continue
        assert get_support(target.device.tensorrt).family in FAMILIES
        assert target.device.peaks_source, name
        if target.kind == "jetson":
            assert get_support(target.device.tensorrt).jetpack is not None, f"{name}: no JetPack ships that TensorRT"
    assert load_target("jetson-orin-nano").device.peak_int8_tops == 33.5  # Super mode, JetPack 6.2
    assert load_target("rtx-3060").device.peak_fp16_tflops < load_target("rtx-3060").device.peak_int8_tops / 2
