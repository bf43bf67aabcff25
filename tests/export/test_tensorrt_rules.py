"""The TensorRT rule check on hand-made graphs (each breaking one rule) and on the exported QDQ file."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_fer.cli import main
from edge_fer.export.converters import qdq_to_tensorrt_qdq
from edge_fer.export.tensorrt_rules import check_tensorrt
from edge_fer.targets.tensorrt_support import get_support


def qdq_conv(zero_point=0, bias_dtype=np.float32, quantize_type=np.int8, weight_axis=0, activation_scale_size=1,
             opset=17, extra_nodes=(), quantize_bias=False):
    """x -> Q -> DQ -> Conv(DQ(w), bias) -> Relu -> y, the smallest explicit-int8 graph TensorRT builds."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.full(activation_scale_size, 0.02, np.float32).reshape(() if activation_scale_size == 1 else (-1,)), "x_scale"),
             numpy_helper.from_array(np.array(zero_point, quantize_type), "x_zero_point"),
             numpy_helper.from_array(weights, "w_q"),
             numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(4, np.int8), "w_zero_point")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["x_q"], name="x_quantize"),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero_point"], ["x_dq"], name="x_dequantize"),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero_point"], ["w"], name="w_dequantize",
                              axis=weight_axis)]
    if quantize_bias:
        inits += [numpy_helper.from_array(np.arange(4, dtype=bias_dtype), "b_q"),
                  numpy_helper.from_array(np.full(4, 0.0002, np.float32), "b_scale"),
                  numpy_helper.from_array(np.zeros(4, bias_dtype), "b_zero_point")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero_point"], ["b"], name="bias_dequantize", axis=0))
    else:
        inits.append(numpy_helper.from_array(np.arange(4, dtype=np.float32) * 0.1, "b"))
    nodes += [helper.make_node("Conv", ["x_dq", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c"], ["y"], name="relu"), *extra_nodes]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def problems(model, version="10", **kwargs):
    return check_tensorrt(model, get_support(version), **kwargs).problems


def test_a_valid_qdq_graph_passes_every_version():
    model = qdq_conv(opset=13)
    onnx.checker.check_model(model)
    for version in ("8.2", "8.5", "8.6", "10", "11"):
        assert problems(model, version) == [], version


def test_each_broken_rule_is_one_line():
    assert problems(qdq_conv(zero_point=-128)) == [
        "x_quantize: zero point -128 is not 0 (TensorRT takes symmetric quantization only)",
        "x_dequantize: zero point -128 is not 0 (TensorRT takes symmetric quantization only)"]
    assert problems(qdq_conv(quantize_bias=True, bias_dtype=np.int32)) == [
        "bias_dequantize: DequantizeLinear of INT32; TensorRT 10.x takes INT8/FLOAT8E4M3FN/INT4 there (keep biases float)"]
    assert problems(qdq_conv(quantize_type=np.uint8))[0].startswith("x_quantize: QuantizeLinear of UINT8")
    assert problems(qdq_conv(weight_axis=1)) == ["w_dequantize: per-channel axis 1; the output channels of its consumer are axis 0"]
    assert problems(qdq_conv(activation_scale_size=3))[0].startswith("x_quantize: per-channel scale on an activation")
    assert problems(qdq_conv(opset=17), "8.2") == ["opset 17 is above TensorRT 8.2's 13: export for this target (edge-fer export --target NAME lowers the opset) or with opset 13"]
    custom = helper.make_node("FusedConv", ["y"], ["z"], name="fused", domain="com.microsoft")
    assert problems(qdq_conv(extra_nodes=[custom])) == [
        "fused: FusedConv from domain 'com.microsoft' needs a plugin TensorRT does not have"]
    layer_norm = helper.make_node("LayerNormalization", ["y", "b"], ["z"], name="norm")
    assert problems(qdq_conv(extra_nodes=[layer_norm]), "8.5") == ["norm: LayerNormalization is not imported by TensorRT 8.5"]
    assert problems(qdq_conv(extra_nodes=[layer_norm]), "8.6") == []


def test_an_unquantized_conv_in_a_quantized_graph_is_named():
    model = qdq_conv()
    extra = helper.make_node("Conv", ["y", "w"], ["z"], name="second_conv")
    model.graph.node.append(extra)
    assert problems(model) == ["second_conv: Conv data y is not behind a DequantizeLinear (TensorRT would run it in float)"]


def test_dla_layers_fall_back_or_fail():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["r", "r"], ["z"], name="scores"),
             helper.make_node("ReduceMean", ["z"], ["m"], name="mean")]
    graph = helper.make_graph(nodes, "float", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                              [helper.make_tensor_value_info("m", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = check_tensorrt(model, get_support("8.6"), dla=True, gpu_fallback=True)
    assert report.passed and report.notes == ["1 × MatMul of two activations cannot run on DLA (falls back to the GPU)",
                                              "1 × ReduceMean cannot run on DLA (falls back to the GPU)"]
    strict = check_tensorrt(model, get_support("8.6"), dla=True, gpu_fallback=False)
    assert len(strict.problems) == 2 and all("GPU fallback is off" in line for line in strict.problems)
    assert "builds no DLA engines" in check_tensorrt(qdq_conv(), get_support("11"), dla=True).problems[0]


def test_qdq_is_not_dla_capable_and_11_4_brings_dla_back():
    report = check_tensorrt(qdq_conv(), get_support("8.6"), dla=True, gpu_fallback=True)
    assert report.problems == ["3 Q/DQ nodes: DLA runs implicit quantization only; build DLA int8 from the Q/DQ-free "
                               "model and a calibration cache (edge-fer engine does this for DLA targets)"]
    assert not get_support("11.0.0").dla and get_support("11.4.1").dla and get_support("11.4.1").jetpack == "7.0"
    assert "builds no DLA engines" not in " ".join(check_tensorrt(qdq_conv(), get_support("11.4.1"), dla=True).problems)


def test_dequantize_without_a_zero_point_is_refused_by_8x_parsers_only():
    model = qdq_conv(opset=13)
    node = next(n for n in model.graph.node if n.name == "x_dequantize")
    del node.input[2]
    for version in ("8.2", "8.5", "8.6"):
        assert problems(model, version) == [f"x_dequantize: TensorRT {version}'s ONNX parser needs DequantizeLinear's "
                                            "zero point input; give an int8 zero point of 0"]
    assert problems(model, "10") == []


def test_the_cli_exits_2_with_one_line_per_problem(tmp_path, capsys):
    bad = tmp_path / "asymmetric.onnx"
    onnx.save(qdq_conv(zero_point=-128), str(bad))
    assert main(["check", "tensorrt", str(bad), "--tensorrt", "8.6"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("zero point -128 is not 0" in line for line in err)
    bias = tmp_path / "int32-bias.onnx"
    onnx.save(qdq_conv(quantize_bias=True, bias_dtype=np.int32), str(bias))
    assert main(["check", "tensorrt", str(bias)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{bias}: bias_dequantize: DequantizeLinear of INT32; TensorRT 10.x takes INT8/FLOAT8E4M3FN/INT4 there (keep biases float)"]
    good = tmp_path / "good.onnx"
    onnx.save(qdq_conv(), str(good))
    assert main(["check", "tensorrt", str(good), "--target", "jetson-xavier-nx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["tensorrt"] == "8.5"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx")
    assert main(["check", "tensorrt", str(garbage)]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err


def test_conversion_makes_an_asymmetric_graph_valid_and_keeps_its_outputs():
    import onnxruntime as ort

    source = qdq_conv(zero_point=-128, quantize_bias=True, bias_dtype=np.int32)
    converted = qdq_to_tensorrt_qdq(onnx.load_from_string(source.SerializeToString()))
    assert problems(converted) == []
    x = np.random.default_rng(1).uniform(0, 5, (1, 3, 8, 8)).astype(np.float32)
    before = ort.InferenceSession(source.SerializeToString()).run(None, {"x": x})[0]
    after = ort.InferenceSession(converted.SerializeToString()).run(None, {"x": x})[0]
    # the input range [0, 5.1] at scale 0.02 becomes [-5.1, 5.1] at 0.04: one step of 0.04 at most per input
    assert np.abs(before - after).max() < 0.04 * 0.01 * 27 * 127 * 0.5


def test_the_exported_qdq_file_passes_for_every_version(exported):
    _, results = exported
    model = onnx.load(results["onnx-int8-qdq"]["path"])
    for version in ("8.5", "8.6", "10", "11"):
        assert problems(model, version) == [], version
    meta = json.loads(open(results["onnx-int8-qdq"]["path"] + ".json").read())
    assert meta["tensorrt_check"]["passed"] and meta["tensorrt_check"]["tensorrt"] == "10.x"


def hostile_onnx(folder, kind: str):
    """An ONNX file a checker must refuse without reading or allocating what it declares."""
    path = folder / "model-onnx-fp32.onnx"
    if kind == "corrupt":
        path.write_bytes((Path(__file__).resolve().parents[2] / "benchmarks" / "ferplus" / "model-onnx-fp32.onnx").read_bytes()[:5000])
        return path
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3])
    if kind == "outside":
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "../../../etc/passwd"), ("offset", "0"), ("length", "48")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
    else:  # "huge": 2^40 floats declared, none stored
        weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])
    graph = helper.make_graph([helper.make_node("MatMul", ["pixels", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 64, 64, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weight])
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    return path


@pytest.mark.hostile("tracebacks")
@pytest.mark.parametrize("kind, message", [("corrupt", "not a readable ONNX model"),
                                           ("outside", "outside the model's folder"), ("huge", "declares")])
def test_hostile_onnx_files_are_one_line_in_check_and_engine_plans(tmp_path, capsys, kind, message):
    path = hostile_onnx(tmp_path, kind)
    assert main(["check", "tensorrt", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert main(["engine", str(tmp_path), "--precision", "fp16", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
