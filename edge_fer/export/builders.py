"""The builders of CPU artifacts: one registered function per format of the format table, from the export context
(the float or QAT Keras model, calibration images, the ONNX opset) to the artifact's bytes. TensorRT engines are
built by export/engines.py, from the ONNX files these make."""

from __future__ import annotations

from typing import Callable

from edge_fer.export import converters
from edge_fer.registry import Registry

BUILDERS: Registry[Callable[..., bytes]] = Registry("artifact builder")
builds = BUILDERS.register


@builds("tflite-fp32")
def tflite_fp32(ctx) -> bytes:
    return converters.keras_to_tflite(ctx.float_model, "fp32")


@builds("tflite-fp16")
def tflite_fp16(ctx) -> bytes:
    return converters.keras_to_tflite(ctx.float_model, "fp16")


@builds("tflite-dynamic")
def tflite_dynamic(ctx) -> bytes:
    return converters.keras_to_tflite(ctx.float_model, "dynamic")


@builds("tflite-int8")
def tflite_int8(ctx) -> bytes:
    return converters.keras_to_tflite(ctx.float_model, "int8", ctx.calibration)


@builds("tflite-int8-qat")
def tflite_int8_qat(ctx) -> bytes:
    return converters.keras_to_tflite(ctx.qat_model, "int8", ctx.calibration)


@builds("tflite-int8-grey")
def tflite_int8_grey(ctx) -> bytes:
    return converters.keras_to_tflite_float_stem(converters.keras_to_grey_keras(ctx.float_model), ctx.calibration[..., :1])


@builds("tflite-mixed")
def tflite_mixed(ctx) -> bytes:
    return converters.keras_to_tflite_mixed(ctx.float_model, ctx.calibration, ctx.keep_float)


@builds("onnx-fp32")
def onnx_fp32(ctx) -> bytes:
    return ctx.onnx_fp32.SerializeToString()


@builds("onnx-fp16")
def onnx_fp16(ctx) -> bytes:
    return converters.onnx_to_fp16(ctx.onnx_fp32).SerializeToString()


@builds("onnx-int8-qdq")
def onnx_int8_qdq(ctx) -> bytes:
    """The QAT model through TFLite's int8 converter to QDQ ONNX, then into TensorRT's form (biases float, every
    zero point 0): the QAT ranges reach onnxruntime and TensorRT unchanged where they are symmetric."""
    qdq = converters.tflite_to_onnx(ctx.qat_tflite_float_io, ctx.opset)
    return converters.qdq_to_tensorrt_qdq(qdq).SerializeToString()


@builds("onnx-int8-ptq")
def onnx_int8_ptq(ctx) -> bytes:
    return converters.onnx_to_int8_ptq(ctx.onnx_fp32, ctx.calibration).SerializeToString()


@builds("onnx-mixed-qdq")
def onnx_mixed_qdq(ctx) -> bytes:
    return converters.onnx_to_int8_ptq(ctx.onnx_fp32, ctx.calibration, keep_float=tuple(ctx.keep_float_nodes)).SerializeToString()
