import numpy as np
import pytest
import tf_keras as keras

from edge_fer.export.converters import first_conv_output, keras_to_grey_keras, keras_to_tflite
from edge_fer.models import create_model


def test_the_grey_model_is_the_same_network_on_grey_images():
    from edge_fer.train.callbacks import recalibrate_batchnorm

    model = create_model("patt_lite", 8, 64, weights="none", seed=1)
    live = np.random.default_rng(9).uniform(0, 255, (8, 64, 64, 3)).astype(np.float32)
    recalibrate_batchnorm(model, [(live, None)])  # random init alone lets every activation fade to zero
    grey_model = keras_to_grey_keras(model)
    assert grey_model.input_shape == (None, 64, 64, 1) and model.input_shape == (None, 64, 64, 3)
    grey = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 1)).astype(np.float32)
    features = [keras.Model(m.input, m.get_layer("patch_pointwise").output) for m in (model, grey_model)]
    expected = features[0](np.repeat(grey, 3, axis=-1)).numpy()
    scale = np.abs(expected).max()
    assert np.ptp(expected, axis=0).max() > 0.3 * scale  # the images get different features
    np.testing.assert_allclose(features[1](grey).numpy(), expected, atol=1e-4 * scale)
    np.testing.assert_allclose(grey_model(grey).numpy(), model(np.repeat(grey, 3, axis=-1)).numpy(), atol=1e-6)
    colour = np.random.default_rng(1).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    assert not np.allclose(features[1](colour[..., :1]).numpy(), features[0](colour).numpy(), atol=0.05 * scale)


def test_a_model_that_treats_channels_apart_cannot_take_grey_input():
    inputs = keras.Input((8, 8, 3))
    scaled = keras.layers.Rescaling([1.0, 0.5, 0.25])(inputs)  # a per-channel scale: R = G = B no longer holds
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(scaled))
    with pytest.raises(ValueError, match="treats channels differently"):
        keras_to_grey_keras(model)
    dense_first = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not a convolution over 3 channels"):
        keras_to_grey_keras(dense_first)


def test_first_conv_output_names_the_stem():
    model = create_model("patt_lite", 8, 64, weights="none")
    assert "conv1/" in first_conv_output(keras_to_tflite(model, "fp32"))
