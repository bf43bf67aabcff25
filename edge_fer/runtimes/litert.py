"""TFLite models through ai-edge-litert (XNNPACK on CPU; thread count settable)."""

from __future__ import annotations

import numpy as np

from edge_fer.runtimes.base import Runner, spec_from_shapes


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(detail["dtype"])


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def interpreter_class():
    """LiteRT's interpreter; on a board without LiteRT wheels (JetPack 5's Python 3.8) tflite_runtime's, the same
    API, then TensorFlow's own."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                from tensorflow.lite.python.interpreter import Interpreter
            except ImportError:
                raise ImportError("no TFLite interpreter: pip install ai-edge-litert (Python 3.9+) or tflite-runtime") from None
    return Interpreter


class LiteRTRunner(Runner):
    name = "litert"

    def _load(self) -> None:
        Interpreter = interpreter_class()
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.options.get("threads"))
        self.input_detail = self.interpreter.get_input_details()[0]
        self.output_detail = self.interpreter.get_output_details()[0]
        self.input_spec = spec_from_shapes(self.path, self.input_detail["shape"], self.output_detail["shape"],
                                           classifier=self.options.get("classifier", True))
        self.batch = int(self.input_detail["shape"][0])
        self.interpreter.allocate_tensors()

    def _prepare(self, batch: np.ndarray) -> np.ndarray:
        return quantize(batch, self.input_detail) if np.issubdtype(self.input_detail["dtype"], np.integer) else batch

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self.batch:
            self.interpreter.resize_tensor_input(self.input_detail["index"], list(batch.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(batch)
        self.interpreter.set_tensor(self.input_detail["index"], batch)
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self.output_detail["index"])
        return dequantize(output, self.output_detail) if np.issubdtype(output.dtype, np.integer) else output.copy()

    def _close(self) -> None:
        del self.interpreter
