"""MobileNetV1 backbone: ImageNet weights from a local file, the Keras cache or a download; else random init."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tf_keras as keras

from edge_fer import ui
from edge_fer.errors import UserError

WEIGHTS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
ALPHA_NAMES = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}  # the widths Keras publishes ImageNet weights for
WEIGHTS_FILE = "mobilenet_1_0_224_tf_no_top.h5"
TRUNCATE_AT = "conv_dw_9_relu"
_warned = False


@dataclass
class WeightsOrigin:
    requested: str  # "imagenet", "none" or a path
    pretrained: bool
    source: str  # the file loaded, or why none was

    def as_dict(self) -> dict:
        return {"weights": self.requested, "pretrained": self.pretrained, "weights_source": self.source}


def weights_file(alpha: float = 1.0) -> str:
    return f"mobilenet_{ALPHA_NAMES[alpha]}_224_tf_no_top.h5"


def keras_cache_path(alpha: float = 1.0) -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / weights_file(alpha)


@functools.lru_cache(maxsize=4)
def find_imagenet_weights(alpha: float = 1.0) -> tuple[Path | None, str]:
    """The Keras cache first, then one download try per process (Keras prints to stdout: keep it off --json)."""
    cached = keras_cache_path(alpha)
    if cached.is_file():
        return cached, str(cached)
    url = WEIGHTS_BASE_URL + weights_file(alpha)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return Path(keras.utils.get_file(weights_file(alpha), url, cache_subdir="models")), url
    except Exception as error:  # offline, proxy, TLS: all mean the same here
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        return None, f"no ImageNet weights in {cached} and the download failed ({reason})"


def check_alpha(alpha: float, pretrained: bool) -> None:
    if not 0.1 <= alpha <= 2.0:
        raise UserError(f"model.alpha must be between 0.1 and 2 (MobileNet's width multiplier), got {alpha}")
    if pretrained and alpha not in ALPHA_NAMES:
        widths = ", ".join(str(a) for a in sorted(ALPHA_NAMES))
        raise UserError(f"ImageNet MobileNet weights exist for alpha {widths}, not {alpha}; pick one of those or "
                        "set model.weights=none")


def build_mobilenet(scaled_input, weights: str | None, alpha: float = 1.0) -> tuple[keras.Model, WeightsOrigin]:
    """MobileNetV1 at width `alpha` built on `scaled_input` (already in [-1, 1]), so its layers join the caller's
    functional graph flat (tfmot cannot quantize nested models)."""
    global _warned
    requested = (weights or "none").lower() if weights in (None, "none", "imagenet", "None") else str(weights)
    check_alpha(alpha, pretrained=requested != "none")
    base = keras.applications.MobileNet(input_tensor=scaled_input, alpha=alpha, include_top=False, weights=None)
    if requested == "none":
        return base, WeightsOrigin("none", False, "random init (weights=none)")
    if requested == "imagenet":
        path, source = find_imagenet_weights(alpha)
        if path is None:
            if not _warned:
                ui.warn(f"{source}; using RANDOM INIT: results are from-scratch numbers. "
                        f"Put {weights_file(alpha)} in {keras_cache_path(alpha).parent} or pass --weights PATH.")
                _warned = True
            return base, WeightsOrigin("imagenet", False, source)
    else:
        path = Path(requested).expanduser()
        if not path.is_file():
            raise UserError(f"weights file {path} does not exist; pass 'imagenet', 'none' or the path of {weights_file(alpha)}")
        source = str(path)
    before = base.get_weights()
    try:
        base.load_weights(str(path), by_name=True, skip_mismatch=False)
    except (ValueError, OSError) as error:
        raise UserError(f"cannot load MobileNet weights from {path}: {error}") from None
    loaded = sum(not np.array_equal(old, new) for old, new in zip(before, base.get_weights()))
    if not loaded:  # by_name matched nothing: the model would be random init, reported as pretrained
        raise UserError(f"{path} holds no weights of MobileNet's layers (conv1, conv_dw_*, conv_pw_*) at alpha {alpha}: "
                        f"give {weights_file(alpha)}, 'imagenet' or 'none'")
    return base, WeightsOrigin(requested, True, source)


def is_backbone_layer(layer) -> bool:
    """MobileNet's layers are all named conv1*, conv_dw_*, conv_pw_*, conv_pad_*; ours never start with 'conv'."""
    return layer.name.startswith("conv")
