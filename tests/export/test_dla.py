"""DLA int8 by implicit quantization: the committed FERPlus QDQ file becomes a Q/DQ-free model and a TensorRT
calibration cache that holds exactly its activation scales."""

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge_fer.export.dla import cache_text, qdq_file_to_implicit, read_cache, version_code
from edge_fer.targets.tensorrt_support import version_from_trtexec_banner

QDQ = Path(__file__).resolve().parents[2] / "benchmarks" / "ferplus" / "model-onnx-int8-qdq.onnx"
FP32 = QDQ.with_name("model-onnx-fp32.onnx")


def qdq_activation_scales(model) -> dict:
    """Read independently of the converter: every QuantizeLinear of a non-constant tensor, and its scale."""
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    return {node.input[0]: float(constants[node.input[1]]) for node in model.graph.node
            if node.op_type == "QuantizeLinear" and node.input[0] not in constants}


def test_the_cache_holds_the_qdq_scales_exactly():
    plain_bytes, text = qdq_file_to_implicit(QDQ, "8.5.2")
    assert text.splitlines()[0] == "TRT-8502-EntropyCalibration2"
    expected = qdq_activation_scales(onnx.load(str(QDQ)))
    cached = read_cache(text)
    assert len(expected) > 20 and cached == {name: np.float32(scale).item() for name, scale in expected.items()}
    plain = onnx.load_from_string(plain_bytes)
    produced = {out for node in plain.graph.node for out in node.output} | {i.name for i in plain.graph.input}
    assert set(cached) <= produced  # every cached tensor exists in the network TensorRT builds


def test_the_qdq_free_model_has_no_qdq_and_computes_what_the_float_model_does():
    import onnxruntime

    plain_bytes, _ = qdq_file_to_implicit(QDQ, "10.3.0")
    plain = onnx.load_from_string(plain_bytes)
    assert not {node.op_type for node in plain.graph.node} & {"QuantizeLinear", "DequantizeLinear"}
    images = np.random.default_rng(0).uniform(0, 255, (8, 112, 112, 3)).astype(np.float32)
    ours, reference = onnxruntime.InferenceSession(plain_bytes), onnxruntime.InferenceSession(str(FP32))
    got = ours.run(None, {ours.get_inputs()[0].name: images})[0]
    expected = reference.run(None, {reference.get_inputs()[0].name: images})[0]
    assert np.abs(got - expected).max() < 0.1  # the weights carry their int8 rounding, nothing else differs


def test_cache_header_versions_match_trtexec_banners():
    for version in ("8.2.1", "8.5.2", "8.6.2", "10.3.0"):
        assert version_from_trtexec_banner(f"TensorRT.trtexec [TensorRT v{version_code(version)}]") == version
    assert read_cache(cache_text({"a:0": 0.0125, "b": 3.5}, "8.6.2")) == {"a:0": np.float32(0.0125).item(), "b": 3.5}


def test_dla_int8_on_a_tensorrt_without_implicit_quantization_is_one_line():
    import pytest

    from edge_fer.errors import UserError
    from edge_fer.export.tensorrt import EngineBuildConfig, implicit_int8

    assert implicit_int8(EngineBuildConfig("int8", dla_core=0, tensorrt="8.6.2"))
    assert not implicit_int8(EngineBuildConfig("int8", tensorrt="11.4.1")) and not implicit_int8(EngineBuildConfig("fp16", dla_core=0))
    with pytest.raises(UserError, match="no implicit quantization"):
        implicit_int8(EngineBuildConfig("int8", dla_core=0, tensorrt="11.4.1"))
