"""PAtt-Lite (arXiv 2306.09626) and the paper's Table 4 ablations."""

from __future__ import annotations

import math

import tf_keras as keras

from edge_fer.errors import UserError
from edge_fer.models import register_model
from edge_fer.models.backbone import TRUNCATE_AT, build_mobilenet
from edge_fer.models.layers import TokenSelfAttention

PATCH_FILTERS = 256
ATTENTION_UNITS = 32
GRID = 2  # the patch block ends in GRID × GRID patches


def inputs_and_backbone(image_size: int, weights, truncate: bool):
    if image_size < 32:
        raise UserError(f"image size {image_size} is too small for MobileNetV1; use 32 pixels or more")
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_scale")(pixels)
    base, origin = build_mobilenet(scaled, weights)
    features = base.get_layer(TRUNCATE_AT).output if truncate else base.output
    return pixels, features, origin


def patch_geometry(feature_size: int, image_size: int) -> int:
    """Kernel = stride of the first patch conv ('same') that turns the feature map into 4×4 (then 2×2)."""
    stride = math.ceil(feature_size / (2 * GRID))
    if feature_size < 2 * GRID or math.ceil(feature_size / stride) != 2 * GRID:
        raise UserError(
            f"image size {image_size} gives a {feature_size}×{feature_size} feature map that cannot be split into "
            f"{GRID}×{GRID} patches; use 64, 112, 128, 160, 192, 224 or another size whose feature map "
            f"(size/16) is 4, 7, 8 or 10-16"
        )
    return stride


def patch_extraction(features, image_size: int, dropout: float):
    feature_size = int(features.shape[1])
    stride = patch_geometry(feature_size, image_size)
    x = keras.layers.SeparableConv2D(PATCH_FILTERS, stride, strides=stride, padding="same", activation="relu",
                                     name="patch_sepconv_1")(features)
    x = keras.layers.SeparableConv2D(PATCH_FILTERS, 2, strides=2, padding="valid", activation="relu",
                                     name="patch_sepconv_2")(x)
    x = keras.layers.Conv2D(PATCH_FILTERS, 1, activation="relu", name="patch_pointwise")(x)
    return keras.layers.SpatialDropout2D(dropout, name="patch_dropout")(x)


def attention_classifier(feature_map, num_classes: int, dropout: float):
    """Per-sample attention: the spatial positions are tokens → Dense 32 ReLU → self-attention → mean → softmax."""
    height, width, channels = (int(d) for d in feature_map.shape[1:])
    tokens = keras.layers.Reshape((height * width, channels), name="tokens")(feature_map)
    x = keras.layers.Dense(ATTENTION_UNITS, activation="relu", name="token_dense")(tokens)
    x = TokenSelfAttention(name="token_attention")(x)
    x = keras.layers.GlobalAveragePooling1D(name="token_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)


def plain_classifier(feature_map, num_classes: int, dropout: float):
    x = keras.layers.GlobalAveragePooling2D(name="gap")(feature_map)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)


@register_model
def patt_lite(num_classes, image_size, weights, dropout):
    """PAtt-Lite: MobileNetV1 to conv_dw_9_relu, patch extraction, per-sample attention over the 2×2 patches."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=True)
    outputs = attention_classifier(patch_extraction(features, image_size, dropout), num_classes, dropout)
    return keras.Model(pixels, outputs, name="patt_lite"), origin


@register_model
def patt_lite_paper(num_classes, image_size, weights, dropout):
    """The official notebook's head: GAP → Dense 32 ReLU → BN → Attention(use_scale=True)([x, x]) → softmax.

    BATCH-DEPENDENT, kept only to measure the published design. On tf_keras 2.21 (measured in
    tests/models/test_patt_lite.py) Attention on a 2-D (batch, 32) tensor computes softmax(s·X Xᵀ) X over
    the *batch*: each image's output mixes in the other images of its batch. With large feature norms the
    diagonal dominates and it looks like an identity; with small norms it is close to the batch mean.
    """
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=True)
    x = patch_extraction(features, image_size, dropout)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="gap_dropout")(x)
    x = keras.layers.Dense(ATTENTION_UNITS, activation="relu", name="pre_classification_dense")(x)
    x = keras.layers.BatchNormalization(name="pre_classification_bn")(x)
    x = keras.layers.Attention(use_scale=True, name="attention")([x, x])
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(pixels, outputs, name="patt_lite_paper"), origin


@register_model
def mobilenet_v1(num_classes, image_size, weights, dropout):
    """Ablation baseline: the full MobileNetV1 backbone, GAP and a dense softmax head."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=False)
    return keras.Model(pixels, plain_classifier(features, num_classes, dropout), name="mobilenet_v1"), origin


@register_model
def mobilenet_v1_patch(num_classes, image_size, weights, dropout):
    """Ablation: truncated MobileNetV1 with the patch-extraction block and a plain GAP + dense head."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=True)
    outputs = plain_classifier(patch_extraction(features, image_size, dropout), num_classes, dropout)
    return keras.Model(pixels, outputs, name="mobilenet_v1_patch"), origin


@register_model
def mobilenet_v1_attention(num_classes, image_size, weights, dropout):
    """Ablation: the full MobileNetV1 backbone with the per-sample attention classifier over its positions."""
    pixels, features, origin = inputs_and_backbone(image_size, weights, truncate=False)
    return keras.Model(pixels, attention_classifier(features, num_classes, dropout), name="mobilenet_v1_attention"), origin
