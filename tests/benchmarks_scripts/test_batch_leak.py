import importlib.util

import numpy as np

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("batch_leak_audit", REPO / "benchmarks" / "batch_leak_audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


def test_batch_attention_is_an_identity_alone_and_mixes_in_a_batch():
    x = np.random.default_rng(0).normal(size=(5, 32)) * 0.3
    np.testing.assert_allclose(audit.batch_attention(x[:1], 0.7), x[:1])
    mixed = audit.batch_attention(x, 1 / np.sqrt(32))
    weights = audit.softmax(x @ x.T / np.sqrt(32))
    np.testing.assert_allclose(mixed, weights @ x)
    assert np.abs(mixed[0] - x[0]).max() > 1e-3


def test_scoring_order_changes_what_a_batch_sees():
    features = np.random.default_rng(1).normal(size=(40, 8))
    kernel, bias = np.random.default_rng(2).normal(size=(8, 3)), np.zeros(3)
    alone = audit.score_in_batches(features, 1.0, kernel, bias, np.arange(40), 1)
    np.testing.assert_array_equal(alone, (features @ kernel).argmax(1))
    batched = audit.score_in_batches(features, 1.0, kernel, bias, np.arange(40), 8)
    assert batched.shape == (40,) and (batched != alone).any()


def test_the_numpy_head_reproduces_a_keras_attention_head_across_a_batch():
    import tf_keras as keras

    inputs = keras.Input((16,))  # the published head's layers, on features instead of images
    x = keras.layers.Dense(32, activation="relu", name="pre_classification_dense")(inputs)
    x = keras.layers.BatchNormalization(name="pre_classification_bn")(x)
    x = keras.layers.Attention(use_scale=True, name="attention")([x, x])
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax", name="predictions")(x))
    model.get_layer("attention").set_weights([np.array(0.05, np.float32)])  # small scores: strong batch mixing
    samples = np.random.default_rng(3).normal(size=(6, 16)).astype(np.float32)

    feature_model, scale, kernel, bias = audit.head_parts(model)
    assert scale == np.float32(0.05)
    features = np.asarray(feature_model(samples, training=False))
    assert audit.check_against_keras(model, samples, features, scale, kernel, bias) < 1e-5
    alone = np.asarray(model(samples[:1], training=False))  # the same sample without its batch
    assert np.abs(alone - np.asarray(model(samples, training=False))[:1]).max() > 1e-3
