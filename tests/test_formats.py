"""The format table is the one source of per-format facts: every format has a builder, a runtime that runs it and
(on a CPU) a peak kernel; what the bundle and the artifact reader derive from it follows the table."""

import numpy as np
import pytest

from edge_fer.errors import UserError
from edge_fer.formats import FORMATS, PARITY_FLOORS, format_of_name, get_format, parse_formats, peak_of, runtime_of, suffixes


def test_every_format_has_a_builder_a_runtime_and_a_floor():
    from edge_fer.export.builders import BUILDERS
    from edge_fer.runtimes import RUNTIME_MODULES, list_runtimes

    for export_format in FORMATS:
        assert export_format.runtime in list_runtimes() and RUNTIME_MODULES[export_format.runtime][2], export_format.name
        assert export_format.precision in PARITY_FLOORS
        if export_format.needs_gpu:
            assert export_format.runtime == "tensorrt"  # built by export/engines.py from the ONNX files
        else:
            assert export_format.name in BUILDERS, f"{export_format.name} has no builder in export/builders.py"
    assert sorted(BUILDERS.names()) == sorted(f.name for f in FORMATS if not f.needs_gpu)


def test_every_cpu_format_is_compared_with_a_peak_that_is_measured():
    from edge_fer.bench.peak import PEAK_FORMATS

    for export_format in FORMATS:
        if not export_format.needs_gpu:
            assert export_format.peak in PEAK_FORMATS, f"{export_format.name} names no measured peak"


def test_every_peak_format_has_a_kernel():
    import tf_keras as keras

    from edge_fer.bench.peak import PEAK_FORMATS, peak_payloads

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 1)(inputs))))
    payloads = peak_payloads(model, np.random.default_rng(0).uniform(0, 255, (4, 4, 4, 3)).astype(np.float32))
    assert list(payloads) == list(PEAK_FORMATS) and all(payloads.values())


def test_names_and_suffixes_come_from_the_table():
    assert format_of_name("model-onnx-int8-qdq.onnx").name == "onnx-int8-qdq"
    assert format_of_name("mine.tflite").name == "tflite-fp32"  # a renamed file: its suffix's plainest format
    assert format_of_name("notes.txt") is None
    assert suffixes() == [".tflite", ".onnx", ".engine"]
    assert runtime_of("tensorrt-int8") == "tensorrt" and runtime_of("peer") == "other"
    assert peak_of("tflite-int8-qat") == "tflite-int8" and peak_of("tensorrt-fp16") is None


def test_the_bundle_runs_every_suffix_and_carries_every_device_runtime():
    from edge_fer.bench.remote import run_script, runner_modules

    script = run_script()
    assert all(f"artifacts/*/*{suffix}" in script for suffix in suffixes())
    assert {"runtimes/litert.py", "runtimes/onnxruntime_runtime.py", "runtimes/tensorrt_runtime.py"} <= set(runner_modules())
    assert "runtimes/keras_runtime.py" not in runner_modules()


def test_format_lists_are_checked():
    assert [f.name for f in parse_formats("cpu")] == [f.name for f in FORMATS if not f.needs_gpu and not f.on_request]
    assert "tflite-mixed" not in [f.name for f in parse_formats("all")]  # it needs export.keep_float
    cpu = [f.name for f in parse_formats("cpu")]
    assert [f.name for f in parse_formats("cpu, -onnx-int8-ptq,-tflite-fp16")] == [
        name for name in cpu if name not in ("onnx-int8-ptq", "tflite-fp16")]
    with pytest.raises(UserError, match="did you mean 'onnx-int8-ptq'"):
        parse_formats("cpu,-onnx-int8-pqt")
    with pytest.raises(UserError, match="only '-name' items may follow"):
        parse_formats("cpu,tflite-mixed")
    with pytest.raises(UserError, match="did you mean 'onnx-fp16'"):
        get_format("onnx-fp61")
