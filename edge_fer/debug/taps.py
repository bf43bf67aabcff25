"""Every layer's output of a model, for the same images: a quantized file and its float reference, side by side.

A tap runs a model and returns {layer key: that layer's output, dequantized to float}, one array per image batch.
Layers are keyed by the Keras layer that made them (the converters keep Keras names in their tensor names:
`patt_lite/conv_dw_3_relu/Relu6;...` and, after QAT, `patt_lite/quant_conv_dw_3_relu/...`), so a TFLite or ONNX file
lines up with the Keras model it came from and with the other precisions of it. A layer's output is the last
tensor (in execution order) computed from the image under that key: the fused activation in TFLite, the
DequantizeLinear after it in a QDQ file. Weights and other constants never count.

- TFLite: the interpreter keeps every tensor (`experimental_preserve_all_tensors`) with XNNPACK off, since a
  delegate hides the tensors inside it.
- ONNX: NVIDIA's Polygraphy marks every tensor as an output (`ModifyOutputs(..., MARK_ALL)`) and runs it on
  onnxruntime (no GPU needed).
- Keras: a model whose outputs are every layer's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_fer.errors import UserError
from edge_fer.models.names import layer_of_tensor as layer_key

OUTPUT_KEY = "(output)"


@dataclass
class Layer:
    key: str  # what lines it up with the other model's layer
    op: str  # the op that made the output (CONV_2D, Conv, DepthwiseConv2D, ...)
    position: int  # its place in execution order among the layers
    name: str | None = None  # the Keras layer, where the key is not it (ONNX)

    @property
    def label(self) -> str | None:
        return self.name or (None if "#" in self.key else self.key)


def last_per_key(tensors: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    """(tensor name, op, key) in execution order -> key: (its last tensor, op), in the order keys first appear."""
    found: dict[str, tuple[str, str]] = {}
    for name, op, key in tensors:
        if key is not None and op not in ("QUANTIZE", "QuantizeLinear"):
            found[key] = (name, op)
    return found


class TfliteTap:
    batch = 1  # converted with a fixed batch of one

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.interpreter = Interpreter(str(path), experimental_preserve_all_tensors=True,
                                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.interpreter.allocate_tensors()
        details = {t["index"]: t for t in self.interpreter.get_tensor_details()}
        self.input = self.interpreter.get_input_details()[0]
        output_index = self.interpreter.get_output_details()[0]["index"]
        computed, ordered = {self.input["index"]}, []
        for op in self.interpreter._get_ops_details():  # the only API that gives the graph's ops in order
            if not any(index in computed for index in op["inputs"]):
                continue  # a constant's own op (a weight's DEQUANTIZE): not computed from the image
            for index in op["outputs"]:
                computed.add(index)
                key = OUTPUT_KEY if index == output_index else layer_key(details[index]["name"])
                ordered.append((index, op["op_name"], key))
        chosen = last_per_key(ordered)
        self.layers = [Layer(key, op, position) for position, (key, (_, op)) in enumerate(chosen.items())]
        self.indices = {key: index for key, (index, _) in chosen.items()}
        self.details = details
        self.size = int(self.input["shape"][1])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs: dict[str, list] = {key: [] for key in self.indices}
        for image in images:
            self.interpreter.set_tensor(self.input["index"], self.to_input(image[None]))
            self.interpreter.invoke()
            for key, index in self.indices.items():
                outputs[key].append(dequantize(self.interpreter.get_tensor(index), self.details[index]))
        return {key: np.concatenate(values) if values[0].ndim and values[0].shape[0] == 1 else np.stack(values)
                for key, values in outputs.items()}

    def close(self) -> None:
        self.interpreter = None

    def to_input(self, batch: np.ndarray) -> np.ndarray:
        channels = int(self.input["shape"][-1])
        batch = batch[..., :channels]  # a grey file takes one channel of the repeated three
        scale, zero = self.input["quantization"]
        if self.input["dtype"] == np.float32 or not scale:
            return batch.astype(self.input["dtype"])
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(batch / scale + zero), info.min, info.max).astype(self.input["dtype"])


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if values.dtype in (np.int8, np.uint8, np.int16, np.int32) and scale:
        return (values.astype(np.float32) - zero) * scale
    return values.astype(np.float32)


ANCHOR_OPS = ("Conv", "ConvTranspose", "Clip", "Relu", "MatMul", "Gemm", "Softmax", "ReduceMean", "GlobalAveragePool",
              "AveragePool", "MaxPool", "Add", "Mul", "Sigmoid")


class OnnxTap:
    """ONNX layers are keyed by op and count (the 3rd Conv, the 7th Clip): tf2onnx names a QDQ graph's tensors
    after whatever op it split them from, so names do not line up, while the compute ops keep their order. Where
    an op's output is quantized (QuantizeLinear -> DequantizeLinear), the dequantized value is the one compared:
    the rounding is part of that layer's error. An op type whose count differs between two graphs is not compared."""

    batch = 32
    channels_first = True  # tf2onnx's feature maps are NCHW

    def __init__(self, path: Path):
        import onnx
        from polygraphy import constants
        from polygraphy.backend.onnx import BytesFromOnnx, ModifyOutputs
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
        from polygraphy.logger import G_LOGGER

        G_LOGGER.module_severity = G_LOGGER.ERROR
        model = onnx.load(str(path))
        graph = model.graph
        self.input_name = graph.input[0].name
        consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        computed, counts, self.names, self.layers = {self.input_name}, {}, {}, []
        for node in graph.node:  # ONNX keeps nodes in topological order
            if not any(name in computed for name in node.input):
                continue  # a weight's DequantizeLinear: not computed from the image
            computed.update(node.output)
            if node.op_type not in ANCHOR_OPS:
                continue
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
            key = f"{node.op_type}#{counts[node.op_type]}"
            self.names[key] = after_quantization(node.output[0], consumers)
            self.layers.append(Layer(key, node.op_type, len(self.layers), layer_key(node.output[0])))
        output = graph.output[0].name
        self.names[OUTPUT_KEY] = output
        self.layers.append(Layer(OUTPUT_KEY, "output", len(self.layers)))
        self.counts = counts
        self.size = int(graph.input[0].type.tensor_type.shape.dim[1].dim_value)
        self.runner = OnnxrtRunner(SessionFromOnnx(BytesFromOnnx(ModifyOutputs(model, outputs=constants.MARK_ALL))))
        self.runner.activate()

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.runner.infer({self.input_name: images.astype(np.float32)})
        return {key: np.asarray(outputs[name], dtype=np.float32) for key, name in self.names.items()}

    def close(self) -> None:
        self.runner.deactivate()


def after_quantization(name: str, consumers: dict) -> str:
    """The tensor's dequantized copy where it goes through QuantizeLinear -> DequantizeLinear, else itself."""
    for node in consumers.get(name, []):
        if node.op_type == "QuantizeLinear":
            for after in consumers.get(node.output[0], []):
                if after.op_type == "DequantizeLinear":
                    return after.output[0]
    return name


class KerasTap:
    batch = 32

    def __init__(self, path: Path):
        from edge_fer.models.loading import load_model

        model, _ = load_model(str(path))
        keras = __import__("tf_keras")
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        self.model = keras.Model(model.inputs, [layer.output for layer in layers])
        self.keys = [layer.name for layer in layers[:-1]] + [OUTPUT_KEY]
        self.layers = [Layer(key, type(layer).__name__, position) for position, (key, layer) in enumerate(zip(self.keys, layers))]
        self.size = int(model.input_shape[1])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.model(images.astype(np.float32), training=False)
        return {key: np.asarray(value, dtype=np.float32) for key, value in zip(self.keys, outputs)}

    def close(self) -> None:
        self.model = None


def open_tap(path: str | Path):
    """The tap for a file or model folder: .tflite, .onnx, or a saved Keras model (.keras or its folder)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: the model does not exist")
    if path.is_dir() or path.suffix == ".keras":
        return KerasTap(path)
    if path.suffix == ".tflite":
        return TfliteTap(path)
    if path.suffix == ".onnx":
        return OnnxTap(path)
    raise UserError(f"{path}: debug precision reads .tflite, .onnx and saved Keras models (.keras or its folder)")
