"""Pure converters, named source→target. Each takes an in-memory model and returns the converted one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from edge_fer.errors import UserError

INPUT_NAME = "pixels"
DEFAULT_OPSET = 17


def representative(images: np.ndarray):
    """The converter's calibration feed: one image per step, float32 raw pixels."""
    def feed() -> Iterable[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]
    return feed


def converted_to_tflite(model, configure: Callable) -> bytes:
    """The TFLite flatbuffer of a Keras model, `configure(converter)` setting the converter's options first.

    The converter reads a SavedModel of the model's inference function and its variables alone. Its own
    from_keras_model saves a Keras SavedModel, with every layer's call traced, before the same conversion:
    three to four times slower on PAtt-Lite, for a file whose outputs were identical on the images compared."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)
    module = tf.Module()
    module.weights = list(model.variables)
    module.serve = tf.function(lambda pixels: model(pixels, training=False), input_signature=[spec])
    with tempfile.TemporaryDirectory(prefix="edge-fer-savedmodel-") as folder:
        tf.saved_model.save(module, folder, signatures={"serving_default": module.serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        configure(converter)
        return converter.convert()


def keras_to_tflite(model, precision: str, calibration: np.ndarray | None = None, int8_io: bool = True) -> bytes:
    """precision: fp32, fp16 (fp16 weights), dynamic (int8 weights, float activations) or int8 (full integer,
    calibrated on `calibration`; int8 input and output unless int8_io=False). A QAT model gives int8 with
    its learned ranges; calibration then only fills the ranges QAT does not learn (inside attention)."""
    if precision not in ("fp32", "fp16", "dynamic", "int8"):
        raise ValueError(f"unknown TFLite precision {precision!r}")
    return converted_to_tflite(model, lambda converter: set_precision(converter, precision, calibration, int8_io))


def set_precision(converter, precision: str, calibration: np.ndarray | None, int8_io: bool) -> None:
    import tensorflow as tf

    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        calibrate_on(converter, calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8


def calibrate_on(converter, calibration: np.ndarray | None) -> None:
    """Integer quantization of a TFLite converter, its ranges calibrated on `calibration` (raw pixels)."""
    import tensorflow as tf

    if calibration is None or len(calibration) == 0:
        raise ValueError("int8 needs calibration images")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative(calibration)


def keras_to_grey_keras(model):
    """The same network for one-channel (grey) input: the first convolution's kernel summed over its three input
    channels. Exact for grey images (R = G = B, and the scaling before the convolution is one scalar for every
    channel). Raises ValueError for a model whose first weighted layer is not that convolution."""
    import tf_keras as keras

    first = next(layer for layer in model.layers if layer.weights)
    kernel_shape = tuple(first.weights[0].shape)
    if not isinstance(first, keras.layers.Conv2D) or len(kernel_shape) != 4 or kernel_shape[2] != 3:
        raise ValueError(f"{model.name}: the first weighted layer {first.name} is not a convolution over 3 channels")
    before = [layer for layer in model.layers[:model.layers.index(first)] if not isinstance(layer, keras.layers.InputLayer)]
    if any(not isinstance(layer, keras.layers.Rescaling) or np.ndim(layer.scale) or np.ndim(layer.offset) for layer in before):
        raise ValueError(f"{model.name}: a layer before {first.name} treats channels differently; it cannot take grey input")
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_input_shape"] = (*layer["config"]["batch_input_shape"][:-1], 1)
    grey = keras.Model.from_config(config)  # our layers are registered serializables
    for layer in grey.layers:
        weights = model.get_layer(layer.name).get_weights()
        if layer.name == first.name:
            weights[0] = weights[0].sum(axis=2, keepdims=True)
        layer.set_weights(weights)
    return grey


def keras_to_tflite_float_stem(model, calibration: np.ndarray) -> bytes:
    """Full-integer int8 except the first convolution, which stays float, with float input and output.

    XNNPACK's int8 kernel for a 3×3 stride-2 convolution over 1-3 input channels is slower than its fp32 one
    (measured here at 112 px: 0.15 against 0.06 ms), so the stem runs in fp32 and a Quantize op follows it.
    TFLite's converter has no option for this; its quantization debugger's own path does it: calibrate only,
    then quantize with the stem's output tensor denylisted."""
    calibrated = calibrated_float(model, calibration)
    return quantize_except(calibrated, [first_conv_output(calibrated)])


def keras_to_tflite_mixed(model, calibration: np.ndarray, keep_float: list[str]) -> bytes:
    """Full-integer int8 except the ops of the Keras layers named in `keep_float`, which stay float (a Quantize or
    Dequantize op at each boundary), with float input and output: the float stem's path, with other layers."""
    calibrated = calibrated_float(model, calibration)
    return quantize_except(calibrated, layer_outputs(calibrated, keep_float))


def calibrated_float(model, calibration: np.ndarray) -> bytes:
    """A float TFLite model carrying the calibrated ranges of every tensor, not yet quantized."""
    def calibrate_only(converter) -> None:
        calibrate_on(converter, calibration)
        converter.experimental_mlir_quantizer = True
        converter._experimental_calibrate_only = True  # noqa: SLF001 (the debugger's path; no public option)

    return converted_to_tflite(model, calibrate_only)


def quantize_except(calibrated: bytes, denylisted: list[str]) -> bytes:
    """int8 everywhere but the ops whose outputs are denylisted, float input and output."""
    from tensorflow.lite.python import convert as tflite_convert

    return tflite_convert.mlir_quantize(calibrated, disable_per_channel=False, fully_quantize=False,
                                        denylisted_nodes=denylisted)


def layer_outputs(tflite_model: bytes, layers: list[str]) -> list[str]:
    """The output tensor names of every op the named Keras layers became; an unknown name is an error that lists
    the layers the file has."""
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model)).subgraphs[0]
    return names_of_layers([graph.tensors[op.outputs[0]].name.decode() for op in graph.operators], layers)


def names_of_layers(names: list[str], layers: list[str]) -> list[str]:
    """The tensor or node names (in a converted file) that the named Keras layers became, a layer's convolution,
    batch norm and activation together (names.layer_family); an unknown layer is an error listing the known ones."""
    from edge_fer.models.names import layer_family, layer_of_tensor

    families = [layer_family(layer_of_tensor(name) or "") for name in names]
    found = {layer: [name for name, family in zip(names, families) if family == layer_family(layer)] for layer in layers}
    missing = [layer for layer, matched in found.items() if not matched]
    if missing:
        known = ", ".join(dict.fromkeys(filter(None, map(layer_of_tensor, names))))
        raise UserError(f"export.keep_float: no layer {', '.join(map(repr, missing))} in this model; its layers: {known}")
    return list(dict.fromkeys(name for matched in found.values() for name in matched))


def onnx_nodes_of_layers(model_proto, layers: list[str]) -> list[str]:
    """The ONNX nodes the named Keras layers became (tf2onnx names each node after its layer)."""
    return names_of_layers([node.name for node in model_proto.graph.node], layers)


def first_conv_output(tflite_model: bytes) -> str:
    """The output tensor name of the first CONV_2D in a TFLite flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
    graph = model.subgraphs[0]
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    for op in graph.operators:
        if codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D:
            return graph.tensors[op.outputs[0]].name.decode()
    raise ValueError("the model has no CONV_2D")


def keras_to_onnx(model, opset: int = DEFAULT_OPSET):
    import tensorflow as tf
    import tf2onnx

    size = model.input_shape[1]
    signature = (tf.TensorSpec((None, size, size, 3), tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    return proto


def tflite_to_onnx(tflite_model: bytes, opset: int = DEFAULT_OPSET):
    """A quantized TFLite model becomes QDQ ONNX: int8 weights behind DequantizeLinear, and a
    QuantizeLinear/DequantizeLinear pair on every activation, which TensorRT reads as explicit INT8."""
    import tf2onnx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(tflite_model)
        proto, _ = tf2onnx.convert.from_tflite(str(path), opset=opset)
    return proto


def onnx_to_fp16(model_proto):
    """fp16 weights and activations with float32 input and output (onnxruntime's converter, a copy of
    onnxconverter-common's): what a strongly typed TensorRT (11.x) needs to build an fp16 engine."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model_proto, keep_io_types=True, disable_shape_infer=False)


def onnx_to_int8_ptq(model_proto, calibration: np.ndarray, keep_float: tuple[str, ...] = ()):
    """onnxruntime static quantization to QDQ in the form TensorRT builds: int8 activations per tensor and
    int8 weights per channel, both symmetric (zero point 0), biases left float. The nodes named in `keep_float`
    run in float (onnxruntime's nodes_to_exclude): their inputs and weights get no Q/DQ of their own, and the
    next quantized node quantizes their output again, as a Quantize op follows a denylisted TFLite op."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = model_proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.images = iter(calibration.astype(np.float32))

        def get_next(self):
            image = next(self.images, None)
            return None if image is None else {input_name: image[None]}

    with tempfile.TemporaryDirectory() as folder:
        source, prepared, target = (Path(folder) / name for name in ("fp32.onnx", "prep.onnx", "int8.onnx"))
        onnx.save(model_proto, str(source))
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(keep_float),
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
        return onnx.load(str(target))


def _dequantized(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray:
    values = values.astype(np.float64) - (0 if zero_point is None else zero_point.astype(np.float64).reshape(
        [-1 if i == axis % values.ndim else 1 for i in range(values.ndim)] if zero_point.size > 1 else []))
    if scale.size > 1:
        scale = scale.reshape([-1 if i == axis % values.ndim else 1 for i in range(values.ndim)])
    return (values * scale).astype(np.float32)


DATA_MOVEMENT_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity")


def _dequantizers_by_quantizer(graph) -> dict:
    """QuantizeLinear output -> the DequantizeLinear nodes that read its int8 values, directly or after ops that
    only move them (tf2onnx puts a Reshape between the two): these must share its scale and zero point."""
    producer = {output: node for node in graph.node for output in node.output}
    found: dict[str, list] = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        source = producer.get(node.input[0])
        while source is not None and source.op_type in DATA_MOVEMENT_OPS:
            source = producer.get(source.input[0])
        if source is not None and source.op_type == "QuantizeLinear":
            found.setdefault(source.output[0], []).append(node)
    return found


def _drop_input_quantization(graph, dequantizers_of: dict, weighted_ops) -> None:
    """Remove a Q/DQ pair that reads a graph input directly and feeds no Conv/MatMul (our input scaling)."""
    inputs = {tensor.name for tensor in graph.input}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    for node in list(graph.node):
        dequantizers = dequantizers_of.get(node.output[0], [])
        if node.op_type != "QuantizeLinear" or node.input[0] not in inputs or not dequantizers:
            continue
        if any(user not in dequantizers for user in consumers.get(node.output[0], [])):
            continue  # read by something other than its DequantizeLinear
        users = [user for dequantizer in dequantizers for user in consumers.get(dequantizer.output[0], [])]
        if any(user.op_type in weighted_ops for user in users):
            continue
        for dequantizer in dequantizers:
            for user in consumers.get(dequantizer.output[0], []):
                for index, tensor in enumerate(user.input):
                    if tensor == dequantizer.output[0]:
                        user.input[index] = node.input[0]
            graph.node.remove(dequantizer)
        graph.node.remove(node)


def qdq_to_tensorrt_qdq(model_proto):
    """A QDQ graph made acceptable to TensorRT's explicit quantization, changing no weight:
    - every DequantizeLinear of a constant that is not a Conv/MatMul weight (int32 biases, the converter's
      quantized scalars) becomes the float constant it stands for: TensorRT dequantizes only int8 (8.x) or
      int8/fp8/int4 (10.x, 11.x) there;
    - the Q/DQ pair on the model input goes: raw pixels 0-255 are exact in int8 only at zero point -128, and the
      input scaling after it (not a conv) runs in float, its output quantized before the first conv;
    - every other activation QuantizeLinear with a non-zero zero point (tfmot's asymmetric ReLU ranges, and the
      ranges the converter calibrated itself, such as a softmax output's fixed [0, 1) at zero point -128) gets
      the symmetric range covering the same values: scale = max(|min|, |max|) / 127, zero point 0. Ranges
      trained with `qat.symmetric = true` are symmetric already and stay as they are.
    onnxruntime runs the result too, so its accuracy is measured on the same file TensorRT builds."""
    import onnx
    from onnx import helper, numpy_helper

    from edge_fer.export.tensorrt_rules import WEIGHTED_OPS

    graph = model_proto.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    weight_inputs = {node.input[1] for node in graph.node if node.op_type in WEIGHTED_OPS and len(node.input) > 1}
    dequantizers_of = _dequantizers_by_quantizer(graph)
    _drop_input_quantization(graph, dequantizers_of, WEIGHTED_OPS)
    kept, added = [], []
    for node in graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        zero_point = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if node.op_type == "DequantizeLinear" and node.input[0] in constants and node.output[0] not in weight_inputs:
            value = _dequantized(constants[node.input[0]], constants[node.input[1]], zero_point, axis)
            added.append(numpy_helper.from_array(value, node.output[0]))
            continue
        if node.op_type == "QuantizeLinear" and zero_point is not None and np.any(zero_point != 0):
            scale = constants[node.input[1]].astype(np.float64)
            low, high = (-128.0 - zero_point) * scale, (127.0 - zero_point) * scale
            symmetric = (np.maximum(np.abs(low), np.abs(high)) / 127.0).astype(np.float32)
            names = (f"{node.output[0]}__trt_scale", f"{node.output[0]}__trt_zero_point")
            added += [numpy_helper.from_array(symmetric, names[0]),
                      numpy_helper.from_array(np.zeros_like(zero_point, dtype=np.int8), names[1])]
            for user in [node, *dequantizers_of.get(node.output[0], [])]:
                user.input[1], user.input[2] = names
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(added)
    used = {tensor for node in graph.node for tensor in node.input} | {output.name for output in graph.output}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    onnx.checker.check_model(model_proto)
    return helper.make_model(graph, opset_imports=[entry for entry in model_proto.opset_import if entry.domain in ("", "ai.onnx")],
                             producer_name=model_proto.producer_name, ir_version=model_proto.ir_version)
