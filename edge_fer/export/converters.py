"""Pure converters, named source→target. Each takes an in-memory model and returns the converted one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

INPUT_NAME = "pixels"
DEFAULT_OPSET = 17


def representative(images: np.ndarray):
    """The converter's calibration feed: one image per step, float32 raw pixels."""
    def feed() -> Iterable[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]
    return feed


def keras_to_tflite(model, precision: str, calibration: np.ndarray | None = None, int8_io: bool = True) -> bytes:
    """precision: fp32, fp16 (fp16 weights), dynamic (int8 weights, float activations) or int8 (full integer,
    calibrated on `calibration`; int8 input and output unless int8_io=False). A QAT model gives int8 with
    its learned ranges; calibration then only fills the ranges QAT does not learn (inside attention)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif precision != "fp32":
        raise ValueError(f"unknown TFLite precision {precision!r}")
    return converter.convert()


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


def onnx_to_int8_ptq(model_proto, calibration: np.ndarray):
    """onnxruntime static quantization to QDQ (int8 activations and per-channel int8 weights)."""
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
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return onnx.load(str(target))
