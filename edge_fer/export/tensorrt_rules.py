"""The rules an ONNX file must meet before TensorRT's parser and builder see it, checked without a GPU.

Each rule is one TensorRT fact, taken from its sources:
- opset: onnx-tensorrt's docs/operators.md per release ("TensorRT 8.2 supports operators up to Opset 13", 8.5
  and 8.6: 17, 10.x: 20, 11.x: 24); per-channel Q/DQ (an `axis`) needs opset 13.
- zero points: onnx-tensorrt's QuantDequantLinearHelper asserts `shiftIsAllZeros(zeroPoint)` ("Non-zero zero
  point is not supported") on every QuantizeLinear/DequantizeLinear; a QuantizeLinear without a zero point
  quantizes to uint8, which the GPU does not take either.
- Q/DQ types: DequantizeLinear runs in INT8 only (8.x) or INT8/FP8/INT4 (10.x, 11.x): an int32 bias behind a
  DequantizeLinear is refused ("DequantizeLayer can only run in kINT8..."). Biases stay float.
- scales: constant and positive; activations per-tensor; weights per-channel along the output channels (Conv
  axis 0, ConvTranspose axis 1, MatMul the last axis).
- placement: in a quantized graph every Conv, ConvTranspose, MatMul and Gemm takes its data and its weights
  through a DequantizeLinear, or TensorRT runs it in float and the int8 engine is not int8 where it counts.
- operators: the ops each version imports; custom domains need plugins edge_fer does not ship.
- DLA: the layers DLA runs (TensorRT's "DLA Supported Layers and Restrictions"); the rest fall back to the GPU
  when GPU fallback is on, and fail the build when it is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_fer.targets.tensorrt_support import TensorRTSupport

BASE_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip Concat
Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal
Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual HardSigmoid HardSwish Hardmax Identity If InstanceNormalization IsInf IsNaN LRN
LSTM LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean Min Mod Mul Neg
NonMaxSuppression Not OneHot Or PRelu Pad Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign Round Scan ScatterElements ScatterND
Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum
Tan Tanh ThresholdedRelu Tile TopK Transpose Unsqueeze Upsample Where Xor
""".split())
ADDED_OPS = {"8.5": {"Trilu", "NonZero"}, "8.6": {"LayerNormalization", "GridSample"},
             "10": {"GroupNormalization", "DFT", "BitwiseAnd", "BitwiseOr", "BitwiseNot", "BitwiseXor"},
             "11": {"Attention", "RotaryEmbedding", "RMSNormalization"}}
ORDER = ("8.2", "8.5", "8.6", "10", "11")

DLA_OPS = frozenset("""
Conv ConvTranspose Gemm Relu Sigmoid Tanh Clip LeakyRelu MaxPool AveragePool GlobalAveragePool GlobalMaxPool Add Sub
Mul Max Min Div BatchNormalization LRN Concat Resize Slice Softmax Abs PRelu
Identity Constant Reshape Flatten Transpose
""".split())
SHAPE_OPS = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Cast", "ReduceProd", "Constant", "ConstantOfShape"})

WEIGHTED_OPS = {"Conv": 0, "ConvTranspose": 1, "MatMul": -1, "Gemm": None}  # op -> per-channel axis of its weights
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
STANDARD_DOMAINS = ("", "ai.onnx")


def supported_ops(support: TensorRTSupport) -> frozenset:
    ops = set(BASE_OPS)
    for family in ORDER[:ORDER.index(support.family) + 1]:
        ops |= ADDED_OPS.get(family, set())
    return frozenset(ops)


@dataclass
class RuleReport:
    tensorrt: str
    problems: list[str] = field(default_factory=list)  # each breaks the parse or the build
    notes: list[str] = field(default_factory=list)  # legal, but worth knowing (DLA fallback)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"tensorrt": self.tensorrt, "passed": self.passed, "problems": self.problems, "notes": self.notes}


class Graph:
    """Constants and producers of one ONNX graph, for the rules to look up."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.model, self.graph = model, model.graph
        self.constants = {init.name: numpy_helper.to_array(init) for init in self.graph.initializer}
        self.constant_types = {init.name: init.data_type for init in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                self.constant_types[node.output[0]] = node.attribute[0].t.data_type
        self.producer = {output: node for node in self.graph.node for output in node.output}

    def opset(self) -> int:
        return max((entry.version for entry in self.model.opset_import if entry.domain in STANDARD_DOMAINS), default=0)

    def type_name(self, tensor: str) -> str | None:
        from onnx import TensorProto

        if tensor in self.constant_types:
            return TensorProto.DataType.Name(self.constant_types[tensor])
        return None


def _name(node) -> str:
    return node.name or node.output[0]


def check_opset(graph: Graph, support: TensorRTSupport) -> list[str]:
    opset = graph.opset()
    problems = []
    if opset > support.max_opset:
        problems.append(f"opset {opset} is above TensorRT {support.label}'s {support.max_opset}: export for this target (edge-fer export --target NAME lowers the opset) or with opset {support.max_opset}")
    per_channel = any(node.op_type in QDQ_OPS and any(a.name == "axis" for a in node.attribute) for node in graph.graph.node)
    if per_channel and opset < 13:
        problems.append(f"per-channel Q/DQ needs opset 13 or later (this file has {opset})")
    return problems


def check_ops(graph: Graph, support: TensorRTSupport) -> list[str]:
    known = supported_ops(support)
    problems, seen = [], set()
    for node in graph.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            key = f"{node.domain}::{node.op_type}"
            message = f"{_name(node)}: {node.op_type} from domain {node.domain!r} needs a plugin TensorRT does not have"
        elif node.op_type not in known:
            key = node.op_type
            message = f"{_name(node)}: {node.op_type} is not imported by TensorRT {support.label}"
        else:
            continue
        if key not in seen:
            seen.add(key)
            problems.append(message)
    return problems


def check_qdq_node(graph: Graph, node, support: TensorRTSupport, weight_axes: dict) -> list[str]:
    name, problems = _name(node), []
    data, scale_name = node.input[0], node.input[1]
    zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if zero_point is None:
        if node.op_type == "QuantizeLinear":
            problems.append(f"{name}: QuantizeLinear without a zero point quantizes to uint8; give an int8 zero point of 0")
        elif support.dq_zero_point:
            problems.append(f"{name}: TensorRT {support.label}'s ONNX parser needs DequantizeLinear's zero point input; "
                            "give an int8 zero point of 0")
    elif zero_point not in graph.constants:
        problems.append(f"{name}: zero point {zero_point} is computed at run time; TensorRT needs a constant 0")
    elif np.any(graph.constants[zero_point] != 0):
        value = graph.constants[zero_point].reshape(-1)[np.flatnonzero(graph.constants[zero_point])[0]]
        problems.append(f"{name}: zero point {value} is not 0 (TensorRT takes symmetric quantization only)")
    quantized_type = graph.type_name(zero_point) if zero_point else None
    if node.op_type == "DequantizeLinear" and data in graph.constants:
        quantized_type = graph.type_name(data)
    if quantized_type and quantized_type not in support.qdq_types:
        problems.append(f"{name}: {node.op_type} of {quantized_type}; TensorRT {support.label} takes "
                        f"{'/'.join(support.qdq_types)} there (keep biases float)")
    scale = graph.constants.get(scale_name)
    if scale is None:
        problems.append(f"{name}: scale {scale_name} is not a constant")
        return problems
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        problems.append(f"{name}: scale must be finite and positive")
    if scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        expected = weight_axes.get(node.output[0])
        if node.op_type == "QuantizeLinear" or data not in graph.constants:
            problems.append(f"{name}: per-channel scale on an activation; TensorRT quantizes activations per tensor")
        elif expected is not None:
            rank = graph.constants[data].ndim
            if axis % rank != expected % rank:
                problems.append(f"{name}: per-channel axis {axis}; the output channels of its consumer are axis {expected % rank}")
    return problems


def weight_axes_of(graph: Graph) -> dict:
    """DequantizeLinear output -> the per-channel axis its consuming Conv/ConvTranspose/MatMul expects."""
    axes = {}
    for node in graph.graph.node:
        if node.op_type in WEIGHTED_OPS and WEIGHTED_OPS[node.op_type] is not None and len(node.input) > 1:
            axes[node.input[1]] = WEIGHTED_OPS[node.op_type]
    return axes


def check_placement(graph: Graph, float_nodes: frozenset = frozenset()) -> list[str]:
    """Every Conv/MatMul reads Q/DQ'd data and weights, but the nodes a mixed file keeps in float on purpose."""
    problems = []
    for node in graph.graph.node:
        if node.op_type not in WEIGHTED_OPS or node.name in float_nodes:
            continue
        for role, tensor in zip(("data", "weights"), node.input[:2]):
            producer = graph.producer.get(tensor)
            if producer is None or producer.op_type != "DequantizeLinear":
                problems.append(f"{_name(node)}: {node.op_type} {role} {tensor} is not behind a DequantizeLinear "
                                f"(TensorRT would run it in float)")
    return problems


def check_dla(graph: Graph, gpu_fallback: bool) -> tuple[list[str], list[str]]:
    """(problems, notes): layers DLA does not run. A MatMul with constant weights is a fully connected layer
    (DLA runs it); a MatMul of two activations (attention scores) is not."""
    counts: dict[str, int] = {}
    qdq = sum(node.op_type in QDQ_OPS for node in graph.graph.node)
    implicit_only = [f"{qdq} Q/DQ nodes: DLA runs implicit quantization only; build DLA int8 from the Q/DQ-free "
                     "model and a calibration cache (edge-fer engine does this for DLA targets)"] if qdq else []
    for node in graph.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        if node.op_type == "MatMul":
            op = None if _constant_behind(graph, node.input[1]) else "MatMul of two activations"
        else:
            op = None if node.op_type in DLA_OPS or node.op_type in SHAPE_OPS else node.op_type
        if op:
            counts[op] = counts.get(op, 0) + 1
    lines = [f"{count} × {op} cannot run on DLA" for op, count in sorted(counts.items())]
    if gpu_fallback:
        return implicit_only, [line + " (falls back to the GPU)" for line in lines]
    return implicit_only + [line + " and GPU fallback is off" for line in lines], []


def _constant_behind(graph: Graph, tensor: str) -> bool:
    """A constant, possibly behind a DequantizeLinear."""
    producer = graph.producer.get(tensor)
    if producer is not None and producer.op_type == "DequantizeLinear":
        tensor = producer.input[0]
    return tensor in graph.constants


def kept_float_nodes(model) -> frozenset:
    """The nodes a mixed-precision file keeps in float on purpose, as its embedded edge_fer record lists them."""
    import json

    from edge_fer.export.mixed import float_nodes_of

    for prop in model.metadata_props:
        if prop.key == "edge_fer":
            try:
                return frozenset(float_nodes_of(json.loads(prop.value)))
            except ValueError:
                return frozenset()
    return frozenset()


def check_tensorrt(model, support: TensorRTSupport, dla: bool = False, gpu_fallback: bool = True,
                   float_nodes: frozenset | None = None) -> RuleReport:
    """Every rule against one ONNX model (an onnx.ModelProto). `float_nodes`: nodes kept in float on purpose
    (default: those the file's own record lists)."""
    graph = Graph(model)
    float_nodes = kept_float_nodes(model) if float_nodes is None else frozenset(float_nodes)
    report = RuleReport(tensorrt=support.label)
    report.problems += check_opset(graph, support)
    report.problems += check_ops(graph, support)
    weight_axes = weight_axes_of(graph)
    qdq_nodes = [node for node in graph.graph.node if node.op_type in QDQ_OPS]
    for node in qdq_nodes:
        report.problems += check_qdq_node(graph, node, support, weight_axes)
    if qdq_nodes:
        report.problems += check_placement(graph, float_nodes)
        if float_nodes:
            report.notes.append(f"{len(float_nodes)} nodes kept in float on purpose (mixed precision)")
    if dla:
        if not support.dla:
            report.problems.append(f"TensorRT {support.label} builds no DLA engines on Jetson")
        problems, notes = check_dla(graph, gpu_fallback)
        report.problems += problems
        report.notes += notes
    return report


MAX_ONNX_BYTES = 2 << 30  # protobuf's own limit for one message
MAX_TENSOR_ELEMENTS = 1 << 30  # a declared shape above this is no FER model's, and would be allocated on reading


def read_onnx(path):
    """An ONNX file read for checking, never for running: its size bounded, its external data left unread (and
    refused where it points outside the model's folder), every tensor's declared size bounded, every failure one
    line."""
    import onnx

    from edge_fer.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise UserError(f"{path}: {path.stat().st_size:,} bytes is above ONNX's 2 GiB protobuf limit")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError and others for a file that is not ONNX
        raise UserError(f"{path}: not a readable ONNX model ({type(error).__name__})") from None
    folder = path.resolve().parent
    tensors = list(model.graph.initializer) + [node.attribute[0].t for node in model.graph.node
                                               if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t")]
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
            if not (folder / location).resolve().is_relative_to(folder):
                raise UserError(f"{path}: tensor {tensor.name} keeps its data at {location!r}, outside the model's folder")
        if int(np.prod(list(tensor.dims), dtype=np.float64)) > MAX_TENSOR_ELEMENTS:
            raise UserError(f"{path}: tensor {tensor.name} declares {list(tensor.dims)} elements: not a model to check")
    return model


def check_tensorrt_file(path, support: TensorRTSupport, dla: bool = False, gpu_fallback: bool = True) -> RuleReport:
    from edge_fer.errors import UserError

    model = read_onnx(path)
    try:
        return check_tensorrt(model, support, dla=dla, gpu_fallback=gpu_fallback)
    except (ValueError, OSError, TypeError) as error:  # a tensor whose bytes do not match its shape, unreadable data
        raise UserError(f"{path}: its tensors cannot be read ({type(error).__name__}: {str(error)[:120]})") from None
