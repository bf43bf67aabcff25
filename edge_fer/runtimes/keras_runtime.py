"""The float reference: a saved Keras model, rebuilt from the registry with its weights (no code from the file)."""

from __future__ import annotations

import numpy as np

from edge_fer.runtimes.base import InputSpec, Runner


class KerasRunner(Runner):
    name = "keras"

    def _load(self) -> None:
        from edge_fer.models.loading import load_model

        self.model, self.meta = load_model(self.path)
        _, height, width, channels = self.model.input_shape
        self.input_spec = InputSpec(height, width, channels)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(batch, training=False), np.float32)

    def _close(self) -> None:
        del self.model
