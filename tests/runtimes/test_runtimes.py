import numpy as np
import pytest

from edge_fer.compare import compare
from edge_fer.errors import UserError
from edge_fer.runtimes import create_runtime, list_runtimes, runtime_for
from edge_fer.runtimes.litert import dequantize, quantize


def test_registry_and_lazy_imports():
    import sys

    assert set(list_runtimes()) == {"keras", "litert", "onnxruntime", "tensorrt"}
    runner = create_runtime("tensorrt", "nothing.engine")  # building a runner imports nothing heavy
    assert runner.name == "tensorrt" and "tensorrt" not in sys.modules


def test_non_keras_runtimes_do_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, edge_fer.runtimes.litert, edge_fer.runtimes.onnxruntime_runtime, edge_fer.runtimes.tensorrt_runtime, "
            "edge_fer.export.formats, edge_fer.export.metadata, edge_fer.compare; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_lifecycle_and_input_spec(exported):
    root, results = exported
    runner = runtime_for(results["tflite-int8"]["path"], threads=1)
    with pytest.raises(RuntimeError, match="load"):
        runner.infer(np.zeros((1, 64, 64, 3), np.float32))
    with runner:
        assert runner.input_spec.height == 64
        with pytest.raises(UserError, match="expects"):
            runner.infer(np.zeros((1, 32, 32, 3), np.float32))
        single = runner.infer(np.full((1, 64, 64, 3), 128, np.float32))
        several = runner.infer(np.full((5, 64, 64, 3), 128, np.float32))  # the batch is resized
        assert single.shape == (1, 7) and several.shape == (5, 7)
        np.testing.assert_allclose(several[0], single[0], atol=1e-6)
        assert abs(single.sum() - 1) < 0.05
        prepared = runner.prepare(np.full((1, 64, 64, 3), 128, np.float32))  # int8 input, ready to time
        assert prepared.dtype == np.int8
        np.testing.assert_array_equal(runner.run(prepared), single)
    assert not runner.loaded
    with pytest.raises(UserError, match="does not exist"):
        runtime_for(root / "missing.onnx").load()


def test_comparator_feeds_the_same_inputs_to_every_runtime(exported):
    root, results = exported
    images = np.random.default_rng(0).uniform(0, 255, (20, 64, 64, 3)).astype(np.float32)
    reference = runtime_for(root / "float")
    rows = compare(reference, {name: runtime_for(results[name]["path"]) for name in ("tflite-fp32", "onnx-fp32")}, images)
    assert [row.name for row in rows] == ["tflite-fp32", "onnx-fp32"]
    assert all(row.top1_agreement == 1.0 and row.max_abs_diff < 1e-4 for row in rows)


def test_int8_io_round_trip():
    detail = {"quantization": (0.5, -10), "dtype": np.int8}
    values = np.array([-100.0, -5.0, 0.0, 3.2, 200.0], np.float32)
    q = quantize(values, detail)
    assert q.dtype == np.int8 and q.tolist() == [-128, -20, -10, -4, 127]
    np.testing.assert_allclose(dequantize(q, detail), [-59.0, -5.0, 0.0, 3.0, 68.5])
