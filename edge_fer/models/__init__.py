"""Model registry: `create_model(name, ...)` builds any registered variant, `list_models()` names them."""

from __future__ import annotations

from edge_fer.models.registry import MODELS, register_model


def list_models() -> list[str]:
    return MODELS.names()


def create_model(name: str = "patt_lite", num_classes: int = 8, image_size: int = 224, weights: str | None = "imagenet",
                 dropout: float = 0.2, seed: int | None = None, alpha: float = 1.0):
    """Build a registered variant. The model takes raw RGB pixels 0-255 (batch, image_size, image_size, 3).

    The returned Keras model carries `model.edge_fer`: variant, image size, classes count and weights origin.
    """
    import tf_keras as keras

    builder = MODELS.get(name)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model, origin = builder(num_classes=num_classes, image_size=image_size, weights=weights, dropout=dropout, alpha=alpha)
    model.edge_fer = {"variant": name, "image_size": image_size, "num_classes": num_classes, "alpha": alpha,
                      **origin.as_dict()}
    return model


def model_doc(name: str) -> str:
    return (MODELS.get(name).__doc__ or "").strip().splitlines()[0]


from edge_fer.models import patt_lite  # noqa: E402,F401  (registers the variants)

__all__ = ["MODELS", "create_model", "list_models", "model_doc", "register_model"]
