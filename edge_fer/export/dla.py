"""DLA int8 through implicit quantization. DLA runs no Q/DQ graph (explicit quantization; NVIDIA/TensorRT issue
2222), so for a DLA build a QDQ model becomes a Q/DQ-free ONNX plus a TensorRT calibration cache that holds the
same activation scales, as NVIDIA's cuDLA samples do. Weights are dequantized with their own scales; TensorRT
quantizes them again per channel."""

from __future__ import annotations

import struct

import numpy as np

from edge_fer.errors import UserError

CACHE_KIND = "EntropyCalibration2"


def version_code(version: str) -> int:
    """'8.5.2' -> 8502, '10.3.0' -> 100300: how TensorRT writes its version in banners and cache headers."""
    parts = [int(part) for part in (version.split(".") + ["0", "0"])[:3]]
    return parts[0] * 10000 + parts[1] * 100 + parts[2] if parts[0] >= 10 else parts[0] * 1000 + parts[1] * 100 + parts[2]


def cache_text(scales: dict, tensorrt_version: str) -> str:
    """TensorRT's calibration-cache text: a header, then one 'tensor: scale' line, the scale as a big-endian
    IEEE float32 in hex."""
    lines = [f"TRT-{version_code(tensorrt_version)}-{CACHE_KIND}"]
    lines += [f"{name}: {struct.pack('>f', scale).hex()}" for name, scale in scales.items()]
    return "\n".join(lines) + "\n"


def read_cache(text: str) -> dict:
    scales = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.rpartition(": ")
        scales[name] = struct.unpack(">f", bytes.fromhex(value.strip()))[0]
    return scales


def _attribute(node, name: str, default):
    return next((attribute.i for attribute in node.attribute if attribute.name == name), default)


def _dequantized(values: np.ndarray, scale: np.ndarray, zero_point, axis: int) -> np.ndarray:
    shape = [1] * values.ndim
    if scale.size > 1:
        shape[axis % values.ndim] = scale.size
    zero = 0 if zero_point is None else np.asarray(zero_point, np.float32).reshape(shape)
    return ((values.astype(np.float32) - zero) * scale.astype(np.float32).reshape(shape)).astype(np.float32)


def qdq_to_implicit(model) -> tuple[object, dict]:
    """(the model without Q/DQ nodes, {activation tensor: scale}) from a QDQ onnx.ModelProto."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    scales, rename, weights, kept = {}, {}, [], []
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            scale = constants.get(node.input[1])
            if scale is None:
                raise UserError(f"{node.name or node.output[0]}: the Q/DQ scale is not a constant")
            if node.input[0] not in constants:
                if scale.size != 1:
                    raise UserError(f"{node.name}: a per-channel activation scale has no implicit-quantization form")
                scales[node.input[0]] = float(scale.reshape(-1)[0])
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            if node.input[0] not in constants:  # layout ops (Transpose) may sit between Q and DQ: they see x now
                rename[node.output[0]] = node.input[0]
            continue
        if node.op_type != "DequantizeLinear":
            kept.append(node)
            continue
        data = node.input[0]
        if data in constants:  # an int8 weight: dequantized once, here
            zero_point = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            values = _dequantized(constants[data], constants[node.input[1]], zero_point, _attribute(node, "axis", 1))
            weights.append(numpy_helper.from_array(values, node.output[0]))
        else:  # DQ(Q(x)) is x
            rename[node.output[0]] = data

    def resolved(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in kept:
        for index, name in enumerate(node.input):
            node.input[index] = resolved(name)
    for output in graph.output:
        output.name = resolved(output.name)
    used = {name for node in kept for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used] + weights
    plain = onnx.helper.make_model(
        onnx.helper.make_graph(kept, graph.name, graph.input, graph.output, initializers), opset_imports=model.opset_import,
        producer_name="edge_fer qdq_to_implicit")
    plain.ir_version = model.ir_version
    onnx.checker.check_model(plain)
    return plain, scales


def qdq_file_to_implicit(qdq_path, tensorrt_version: str) -> tuple[bytes, str]:
    """(Q/DQ-free ONNX bytes, calibration cache text) for a DLA int8 build from a QDQ file."""
    from edge_fer.export.tensorrt_rules import read_onnx

    plain, scales = qdq_to_implicit(read_onnx(qdq_path))
    if not scales:
        raise UserError(f"{qdq_path} has no activation QuantizeLinear: nothing to calibrate a DLA int8 engine with")
    return plain.SerializeToString(), cache_text(scales, tensorrt_version)
