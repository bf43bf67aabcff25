"""Parameter and multiply-accumulate counts (conv, depthwise, separable and dense layers)."""

from __future__ import annotations

import math

import tf_keras as keras


def rows_per_sample(layer) -> int:
    """How many rows of a layer's input belong to one image: one per token after FlatTokens, else one."""
    from edge_fer.models.layers import FlatTokens

    inbound = layer.inbound_nodes[0].inbound_layers if layer.inbound_nodes else None
    return math.prod(int(d) for d in inbound.input_shape[1:-1]) if isinstance(inbound, FlatTokens) else 1


def layer_macs(layer) -> int:
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense)):
        return 0
    in_shape, out_shape = layer.input_shape, layer.output_shape
    if isinstance(layer, keras.layers.Dense):
        positions = math.prod(int(d) for d in in_shape[1:-1]) * rows_per_sample(layer)
        return positions * int(in_shape[-1]) * int(layer.units)
    out_positions = int(out_shape[1]) * int(out_shape[2])
    kernel = math.prod(layer.kernel_size)
    channels_in = int(in_shape[-1])
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise = out_positions * kernel * channels_in * layer.depth_multiplier
        return depthwise + out_positions * channels_in * layer.depth_multiplier * layer.filters
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return out_positions * kernel * channels_in * layer.depth_multiplier
    return out_positions * kernel * channels_in * layer.filters // layer.groups


def model_summary(model) -> dict:
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {
        "variant": getattr(model, "edge_fer", {}).get("variant", model.name),
        "alpha": getattr(model, "edge_fer", {}).get("alpha", 1.0),
        "input_shape": list(model.input_shape[1:]),
        "num_classes": int(model.output_shape[-1]),
        "params": int(model.count_params()),
        "trainable_params": trainable,
        "macs": int(sum(layer_macs(layer) for layer in model.layers)),
        "layers": len(model.layers),
    }
