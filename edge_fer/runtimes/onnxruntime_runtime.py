"""ONNX models through onnxruntime (CPU here; CUDA or TensorRT execution providers where installed)."""

from __future__ import annotations

import numpy as np

from edge_fer.runtimes.base import Runner, spec_from_shapes


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def _load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.options.get("threads"):
            options.intra_op_num_threads = int(self.options["threads"])
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_spec = spec_from_shapes(self.path, model_input.shape, self.session.get_outputs()[0].shape,
                                           classifier=self.options.get("classifier", True))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0].astype(np.float32, copy=False)

    def _close(self) -> None:
        del self.session
