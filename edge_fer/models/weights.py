"""Operations on a model's weights, whatever produced the model: digest, layer-by-layer copy, optimizer-free copy."""

from __future__ import annotations

from typing import Callable


def weights_digest(weights) -> str:
    """SHA-256 of a model's weight arrays (dtype, shape and bytes, in order): equal digests, equal models."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def copy_layer_weights(source, target) -> None:
    """Layer by layer (the model-level order moves with the trainable flags; a layer's own order does not)."""
    for source_layer, target_layer in zip(source.layers, target.layers, strict=True):
        if source_layer.weights:
            target_layer.set_weights(source_layer.get_weights())


def without_optimizer(model, build_plain: Callable[[], object]):
    """The weights in a model with no optimizer attached (`build_plain` makes one of the same architecture), to save:
    Adam's two slots per weight would triple the file, and edge-fer reads only the weights back."""
    if getattr(model, "optimizer", None) is None:
        return model
    copy = build_plain()
    copy_layer_weights(model, copy)
    return copy
