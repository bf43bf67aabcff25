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
            "edge_fer.formats, edge_fer.artifacts, edge_fer.compare; "
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


def test_a_one_channel_spec_turns_rgb_into_grey():
    from edge_fer.runtimes.base import InputSpec

    spec = InputSpec(2, 2, 1)
    grey = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1) * 60 + 0.5
    np.testing.assert_array_equal(spec.check(np.repeat(grey, 3, axis=-1)), grey)  # R = G = B: exactly itself
    colour = np.zeros((1, 2, 2, 3), np.float32)
    colour[..., 0] = 100  # pure red: luma 0.299 of it
    np.testing.assert_allclose(spec.check(colour), np.full((1, 2, 2, 1), 29.9, np.float32), rtol=1e-6)
    with pytest.raises(UserError, match=r"expects \(batch, 2, 2, 1\)"):
        spec.check(np.zeros((1, 2, 2, 2), np.float32))


def test_int8_io_round_trip():
    detail = {"quantization": (0.5, -10), "dtype": np.int8}
    values = np.array([-100.0, -5.0, 0.0, 3.2, 200.0], np.float32)
    q = quantize(values, detail)
    assert q.dtype == np.int8 and q.tolist() == [-128, -20, -10, -4, 127]
    np.testing.assert_allclose(dequantize(q, detail), [-59.0, -5.0, 0.0, 3.0, 68.5])


def tiny_onnx(path, input_shape, output_shape):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "not-a-classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        [helper.make_tensor("shape", TensorProto.INT64, [len(output_shape)], output_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.hostile("malformed-input")
@pytest.mark.parametrize("input_shape,output_shape,message", [
    ([1, 8, 8, 3], [1, 8, 24], "output shape [1, 8, 24] is not (batch, classes)"),
    ([1, 192], [1, 192], "input shape [1, 192] is not (batch, height, width, channels)"),
])
def test_an_onnx_that_is_not_an_image_classifier_is_refused_at_load(tmp_path, input_shape, output_shape, message):
    path = tiny_onnx(tmp_path / "model-onnx-fp32.onnx", input_shape, output_shape)
    with pytest.raises(UserError) as error:
        runtime_for(path).load()
    assert message in str(error.value)


@pytest.mark.hostile("malformed-input")
def test_predict_on_a_non_classifier_is_one_line(tmp_path, capsys):
    from edge_fer.cli import main
    from tests.helpers import write_png

    path = tiny_onnx(tmp_path / "model-onnx-fp32.onnx", [1, 8, 8, 3], [1, 8, 24])
    (tmp_path / "model-onnx-fp32.onnx.json").write_text('{"classes": ["a", "b"], "image_size": 8}')
    assert main(["predict", "--artifact", str(path), str(write_png(tmp_path / "face.png"))]) == 2
    err = capsys.readouterr().err
    assert "is not (batch, classes)" in err and err.count("\n") == 1, err
