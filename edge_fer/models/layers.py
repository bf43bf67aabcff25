"""Custom layers, registered for safe-mode loading (no Lambda layers anywhere)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="edge_fer")
class TokenSelfAttention(keras.layers.Layer):
    """Scaled dot-product self-attention among the tokens of ONE sample: softmax(s·QKᵀ/√d)V with Q=K=V=x.

    Input (batch, tokens, dim). Every matmul is per sample (batch_matmul), so a prediction never depends on
    the other images in its batch. `s` is a learned scalar, as Keras' Attention(use_scale=True). Built from
    MatMul, Mul and Softmax only, which TFLite and TensorRT both run in int8.
    """

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"TokenSelfAttention expects (batch, tokens, dim), got {input_shape}")
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=True)
        self.inverse_sqrt_dim = 1.0 / float(input_shape[-1]) ** 0.5
        super().build(input_shape)

    def call(self, tokens):
        scores = tf.matmul(tokens, tokens, transpose_b=True) * (self.scale * self.inverse_sqrt_dim)
        weights = tf.nn.softmax(scores, axis=-1)
        return tf.matmul(weights, tokens)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="edge_fer")
class FlatTokens(keras.layers.Layer):
    """(batch, height, width, dim) -> (batch·height·width, dim): one row per token, through a constant shape.

    With rows a plain Dense is a MatMul (on rank-3 input Keras' Dense is a tensordot with run-time shapes), and
    no shape is read at run time (Keras' Reshape builds its shape from tf.shape): the converted TFLite then has
    no Shape/StridedSlice/Pack/Gather ops, which XNNPACK does not run and which split its graph (112 px int8:
    0.589 -> 0.570 ms in one interleaved measurement). TokenGroups puts the rows back into samples."""

    def call(self, feature_map):
        return tf.reshape(feature_map, [-1, feature_map.shape[-1]])

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])


@keras.saving.register_keras_serializable(package="edge_fer")
class TokenGroups(keras.layers.Layer):
    """(batch·tokens, dim) rows -> (batch, tokens, dim), through a constant shape."""

    def __init__(self, tokens: int, **kwargs):
        super().__init__(**kwargs)
        self.tokens = int(tokens)

    def call(self, rows):
        return tf.reshape(rows, [-1, self.tokens, rows.shape[-1]])

    def compute_output_shape(self, input_shape):
        return (None, self.tokens, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "tokens": self.tokens}
