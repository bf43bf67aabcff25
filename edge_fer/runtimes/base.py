"""One lifecycle for every runtime (Polygraphy-style): load / infer / close, used as a context manager.

infer() takes float32 raw RGB pixels (batch, size, size, 3) (a one-channel artifact also takes grey
(batch, size, size, 1) and turns RGB into grey itself) and returns float32 probabilities
(batch, classes); a runtime with int8 I/O quantizes and dequantizes inside, so callers never see it.
infer() is prepare() then run(): prepare() checks the input and converts it to the artifact's own input
format (int8 for a TFLite model with int8 input), run() feeds it and reads the probabilities back. The
benchmark times run() alone, as MLPerf's LoadGen times only the system under test on samples that are
already preprocessed into the model's input format.
Nothing in this package imports TensorFlow except the Keras runtime.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_fer.errors import UserError

LUMA = np.array([[0.299], [0.587], [0.114]], np.float32)  # RGB -> grey; sums to 1, so R = G = B stays itself


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 1): grey images (R = G = B) exactly, colour ones by luma."""
    if np.array_equal(rgb[..., :1], rgb[..., 1:2]) and np.array_equal(rgb[..., :1], rgb[..., 2:]):
        return rgb[..., :1]
    return rgb @ LUMA


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int = 3
    max_batch: int | None = None  # None: any batch size

    def check(self, batch: np.ndarray) -> np.ndarray:
        """The batch as contiguous float32; RGB becomes grey (ITU-R BT.601 luma) for a one-channel artifact."""
        if self.channels == 1 and batch.ndim == 4 and batch.shape[-1] == 3:
            batch = to_grey(np.asarray(batch, np.float32))
        if batch.ndim != 4 or tuple(batch.shape[1:]) != (self.height, self.width, self.channels):
            raise UserError(
                f"input has shape {tuple(batch.shape)}, the artifact expects (batch, {self.height}, {self.width}, {self.channels})")
        if self.max_batch is not None and len(batch) > self.max_batch:
            raise UserError(f"batch of {len(batch)} is larger than the artifact's {self.max_batch}")
        return np.ascontiguousarray(batch, dtype=np.float32)


def plain_dims(shape) -> list:
    """Dimensions as Python ints, with symbolic (named or unknown) dimensions left as they are."""
    return [int(d) if isinstance(d, (int, np.integer)) else d for d in shape]


def spec_from_shapes(path: Path, input_shape, output_shape, classifier: bool = True) -> InputSpec:
    """The input spec of an artifact from its declared shapes: one NHWC image input with fixed height, width and
    channels, and (for a classifier, which every edge_fer model is) one (batch, classes) output."""
    dims = plain_dims(input_shape)
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise UserError(f"{path}: input shape {dims} is not (batch, height, width, channels); not an edge_fer image classifier")
    if classifier and len(list(output_shape)) != 2:
        raise UserError(f"{path}: output shape {plain_dims(output_shape)} is not (batch, classes); not an edge_fer classifier")
    return InputSpec(*dims[1:])


class Runner(ABC):
    """Subclasses implement _load, _run and _close (and _prepare if the input is not float32) and set
    self.input_spec in _load."""

    name: str = "runner"

    def __init__(self, path: str | Path, **options):
        self.path = Path(path)
        self.options = options
        self.input_spec: InputSpec | None = None
        self.loaded = False

    def load(self) -> "Runner":
        if not self.path.exists():
            raise UserError(f"artifact {self.path} does not exist")
        self._load()
        self.loaded = True
        return self

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.run(self.prepare(batch))

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        """Float32 raw pixels -> this artifact's input (checked, converted); not part of the timed path."""
        self._require_loaded()
        return self._prepare(self.input_spec.check(batch))

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """One prepared batch -> float32 probabilities: the part the benchmark times."""
        self._require_loaded()
        return self._run(prepared)

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise RuntimeError(f"{self.name}: call load() (or use `with`) before infer()")

    def close(self) -> None:
        if self.loaded:
            self._close()
            self.loaded = False

    def __enter__(self) -> "Runner":
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def _load(self) -> None: ...

    def _prepare(self, batch: np.ndarray) -> np.ndarray:
        return batch

    @abstractmethod
    def _run(self, prepared: np.ndarray) -> np.ndarray: ...

    def _close(self) -> None:
        pass
