"""PAtt-Lite (arXiv 2306.09626) and the paper's Table 4 ablations."""

from __future__ import annotations

import math

import tf_keras as keras

from edge_fer.errors import UserError
from edge_fer.models.backbone import TRUNCATE_AT, build_mobilenet
from edge_fer.models.layers import FlatTokens, TokenGroups, TokenSelfAttention
from edge_fer.models.registry import register_model

PATCH_FILTERS = 256
ATTENTION_UNITS = 32
GRID = 2  # the patch block ends in GRID × GRID patches


def scaled(count: int, alpha: float, floor: int) -> int:
    """A channel count at width alpha (the patch block and head narrow with the backbone)."""
    return max(floor, int(round(count * alpha)))


def inputs_and_backbone(image_size: int, weights, truncate: bool, alpha: float = 1.0):
    if image_size < 32:
        raise UserError(f"image size {image_size} is too small for MobileNetV1; use 32 pixels or more")
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    normalised = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_scale")(pixels)
    base, origin = build_mobilenet(normalised, weights, alpha)
    features = base.get_layer(TRUNCATE_AT).output if truncate else base.output
    return pixels, features, origin


def patch_geometry(feature_size: int, image_size: int) -> tuple[int, int, str]:
    """(kernel, stride, padding) of the first patch conv, which turns the feature map into 4×4 (then 2×2).

    The paper's form: kernel = stride, 'same' padding (14 → 4 at 224 px, 7 → 4 at 112 px). Feature maps it cannot
    split (5×5 at 80 px, 6×6 at 96 px, 9×9 at 144 px) get overlapping 'valid' patches instead: stride
    s = floor(f / 4), kernel f - 3s, so (f - k) / s + 1 = 4 and every position is covered."""
    if feature_size < 2 * GRID:
        raise UserError(f"image size {image_size} gives a {feature_size}×{feature_size} feature map, smaller than the "
                        f"{2 * GRID}×{2 * GRID} the patch block needs; use 64 pixels or more")
    stride = math.ceil(feature_size / (2 * GRID))
    if math.ceil(feature_size / stride) == 2 * GRID:
        return stride, stride, "same"
    stride = feature_size // (2 * GRID)
    return feature_size - (2 * GRID - 1) * stride, stride, "valid"


def patch_extraction(features, image_size: int, dropout: float, alpha: float = 1.0):
    feature_size = int(features.shape[1])
    kernel, stride, padding = patch_geometry(feature_size, image_size)
    filters = scaled(PATCH_FILTERS, alpha, 32)
    x = keras.layers.SeparableConv2D(filters, kernel, strides=stride, padding=padding, activation="relu",
                                     name="patch_sepconv_1")(features)
    x = keras.layers.SeparableConv2D(filters, 2, strides=2, padding="valid", activation="relu",
                                     name="patch_sepconv_2")(x)
    x = keras.layers.Conv2D(filters, 1, activation="relu", name="patch_pointwise")(x)
    return keras.layers.SpatialDropout2D(dropout, name="patch_dropout")(x)


def attention_classifier(feature_map, num_classes: int, dropout: float, alpha: float = 1.0):
    """Per-sample attention: the spatial positions are tokens → Dense 32 ReLU → self-attention → mean → softmax."""
    height, width = (int(d) for d in feature_map.shape[1:3])
    rows = FlatTokens(name="tokens")(feature_map)
    x = keras.layers.Dense(scaled(ATTENTION_UNITS, alpha, 8), activation="relu", name="token_dense")(rows)
    x = TokenGroups(height * width, name="token_groups")(x)
    x = TokenSelfAttention(name="token_attention")(x)
    x = keras.layers.GlobalAveragePooling1D(name="token_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)


def plain_classifier(feature_map, num_classes: int, dropout: float):
    x = keras.layers.GlobalAveragePooling2D(name="gap")(feature_map)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)


@register_model
def patt_lite(num_classes, image_size, weights, dropout, alpha=1.0):
    """PAtt-Lite: MobileNetV1 to conv_dw_9_relu, patch extraction, per-sample attention over the 2×2 patches."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=True, alpha=alpha)
    outputs = attention_classifier(patch_extraction(features, image_size, dropout, alpha), num_classes, dropout, alpha)
    return keras.Model(pixels, outputs, name="patt_lite"), origin


@register_model
def patt_lite_paper(num_classes, image_size, weights, dropout, alpha=1.0):
    """The official notebook's head: GAP → Dense 32 ReLU → BN → Attention(use_scale=True)([x, x]) → softmax.

    BATCH-DEPENDENT, kept only to measure the published design. On tf_keras 2.21 (measured in
    tests/models/test_patt_lite.py) Attention on a 2-D (batch, 32) tensor computes softmax(s·X Xᵀ) X over
    the *batch*: each image's output mixes in the other images of its batch. With large feature norms the
    diagonal dominates and it looks like an identity; with small norms it is close to the batch mean.
    """
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=True, alpha=alpha)
    x = patch_extraction(features, image_size, dropout, alpha)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="gap_dropout")(x)
    x = keras.layers.Dense(scaled(ATTENTION_UNITS, alpha, 8), activation="relu", name="pre_classification_dense")(x)
    x = keras.layers.BatchNormalization(name="pre_classification_bn")(x)
    x = keras.layers.Attention(use_scale=True, name="attention")([x, x])
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(pixels, outputs, name="patt_lite_paper"), origin


@register_model
def mobilenet_v1(num_classes, image_size, weights, dropout, alpha=1.0):
    """Ablation baseline: the full MobileNetV1 backbone, GAP and a dense softmax head."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=False, alpha=alpha)
    return keras.Model(pixels, plain_classifier(features, num_classes, dropout), name="mobilenet_v1"), origin


@register_model
def mobilenet_v1_patch(num_classes, image_size, weights, dropout, alpha=1.0):
    """Ablation: truncated MobileNetV1 with the patch-extraction block and a plain GAP + dense head."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=True, alpha=alpha)
    outputs = plain_classifier(patch_extraction(features, image_size, dropout, alpha), num_classes, dropout)
    return keras.Model(pixels, outputs, name="mobilenet_v1_patch"), origin


@register_model
def mobilenet_v1_attention(num_classes, image_size, weights, dropout, alpha=1.0):
    """Ablation: the full MobileNetV1 backbone with the per-sample attention classifier over its positions."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=False, alpha=alpha)
    outputs = attention_classifier(features, num_classes, dropout, alpha)
    return keras.Model(pixels, outputs, name="mobilenet_v1_attention"), origin
