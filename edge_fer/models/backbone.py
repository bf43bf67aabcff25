"""MobileNetV1 backbone: ImageNet weights from a local file, the Keras cache or a download; else random init."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import tf_keras as keras

from edge_fer import ui
from edge_fer.errors import UserError

WEIGHTS_FILE = "mobilenet_1_0_224_tf_no_top.h5"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/" + WEIGHTS_FILE
TRUNCATE_AT = "conv_dw_9_relu"
_warned = False


@dataclass
class WeightsOrigin:
    requested: str  # "imagenet", "none" or a path
    pretrained: bool
    source: str  # the file loaded, or why none was

    def as_dict(self) -> dict:
        return {"weights": self.requested, "pretrained": self.pretrained, "weights_source": self.source}


def keras_cache_path() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / WEIGHTS_FILE


@functools.lru_cache(maxsize=1)
def find_imagenet_weights() -> tuple[Path | None, str]:
    """The Keras cache first, then one download try per process (Keras prints to stdout: keep it off --json)."""
    cached = keras_cache_path()
    if cached.is_file():
        return cached, str(cached)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return Path(keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models")), WEIGHTS_URL
    except Exception as error:  # offline, proxy, TLS: all mean the same here
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        return None, f"no ImageNet weights in {cached} and the download failed ({reason})"


def build_mobilenet(scaled_input, weights: str | None) -> tuple[keras.Model, WeightsOrigin]:
    """MobileNetV1 (alpha 1.0) built on `scaled_input` (already in [-1, 1]), so its layers join the caller's
    functional graph flat (tfmot cannot quantize nested models)."""
    global _warned
    requested = (weights or "none").lower() if weights in (None, "none", "imagenet", "None") else str(weights)
    base = keras.applications.MobileNet(input_tensor=scaled_input, include_top=False, weights=None)
    if requested == "none":
        return base, WeightsOrigin("none", False, "random init (weights=none)")
    if requested == "imagenet":
        path, source = find_imagenet_weights()
        if path is None:
            if not _warned:
                ui.warn(f"{source}; using RANDOM INIT: results are from-scratch numbers. "
                        f"Put {WEIGHTS_FILE} in {keras_cache_path().parent} or pass --weights PATH.")
                _warned = True
            return base, WeightsOrigin("imagenet", False, source)
    else:
        path = Path(requested).expanduser()
        if not path.is_file():
            raise UserError(f"weights file {path} does not exist; pass 'imagenet', 'none' or the path of {WEIGHTS_FILE}")
        source = str(path)
    try:
        base.load_weights(str(path), by_name=True, skip_mismatch=False)
    except (ValueError, OSError) as error:
        raise UserError(f"cannot load MobileNet weights from {path}: {error}") from None
    return base, WeightsOrigin(requested, True, source)


def is_backbone_layer(layer) -> bool:
    """MobileNet's layers are all named conv1*, conv_dw_*, conv_pw_*, conv_pad_*; ours never start with 'conv'."""
    return layer.name.startswith("conv")
