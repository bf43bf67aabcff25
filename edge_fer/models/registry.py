"""The model registry: variants register themselves (`@register_model` on the builder); edge_fer.models imports
them all and builds any of them (create_model)."""

from __future__ import annotations

from typing import Callable

from edge_fer.registry import Registry

MODELS: Registry[Callable] = Registry("model")


def register_model(builder: Callable) -> Callable:
    return MODELS.register(builder.__name__)(builder)
