import json

import numpy as np
import pytest
import tf_keras as keras

from edge_fer.cli import main
from edge_fer.errors import UserError
from edge_fer.models import create_model, list_models
from edge_fer.models.summary import layer_macs, model_summary

BATCH_INDEPENDENT = [name for name in list_models() if name != "patt_lite_paper"]


def test_registry():
    assert set(list_models()) == {"patt_lite", "patt_lite_paper", "mobilenet_v1", "mobilenet_v1_patch", "mobilenet_v1_attention"}


def random_model_with_live_activations(variant, images, **kwargs):
    """Random init (Glorot, ReLU6) lets activations fade to zero through MobileNet's 27 layers, which would
    make every output the same; BatchNorm statistics recalibrated on the images keep each layer alive."""
    from edge_fer.train.callbacks import recalibrate_batchnorm

    model = create_model(variant, weights="none", **kwargs)
    recalibrate_batchnorm(model, [(np.random.default_rng(9).uniform(0, 255, images.shape).astype(np.float32), None)])
    return model


@pytest.mark.parametrize("variant", BATCH_INDEPENDENT)
def test_prediction_does_not_depend_on_the_batch(variant):
    images = np.random.default_rng(0).uniform(0, 255, (32, 64, 64, 3)).astype(np.float32)
    model = random_model_with_live_activations(variant, images, num_classes=7, image_size=64, seed=1)
    together = model(images, training=False).numpy()
    order = np.random.default_rng(1).permutation(32)
    shuffled = model(images[order], training=False).numpy()
    np.testing.assert_allclose(shuffled, together[order], atol=1e-5)
    for index in (0, 7, 31):
        alone = model(images[index:index + 1], training=False).numpy()
        np.testing.assert_allclose(alone[0], together[index], atol=1e-5)
    assert np.ptp(together, axis=0).max() > 1e-4  # the images really produce different outputs


def test_published_attention_on_2d_input_attends_across_the_batch():
    """What Keras' Attention(use_scale=True)([x, x]) computes on a (batch, 32) tensor on this tf_keras."""
    inputs = keras.Input((32,))
    model = keras.Model(inputs, keras.layers.Attention(use_scale=True)([inputs, inputs]))
    x = 0.1 * np.random.default_rng(0).normal(size=(6, 32)).astype(np.float32)
    scores = x @ x.T
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model(x).numpy(), weights @ x, atol=1e-5)  # softmax(X Xᵀ) X over the batch
    assert np.abs(model(x[:1]).numpy()[0] - model(x).numpy()[0]).max() > 1e-2  # batch-dependent
    big = 10 * x  # large norms: the diagonal dominates, and it looks like an identity
    np.testing.assert_allclose(model(big).numpy(), big, atol=1e-3)


def test_patt_lite_paper_prediction_depends_on_the_batch():
    images = np.random.default_rng(0).uniform(0, 255, (16, 64, 64, 3)).astype(np.float32)
    model = random_model_with_live_activations("patt_lite_paper", images, num_classes=7, image_size=64, seed=0)
    bn = model.get_layer("pre_classification_bn")
    gamma, beta, mean, variance = bn.get_weights()
    bn.set_weights([np.full_like(gamma, 0.1), beta, mean, variance])  # small features: the batch mixing shows
    alone = model(images[:1], training=False).numpy()[0]
    in_batch = model(images, training=False).numpy()[0]
    assert np.abs(alone - in_batch).max() > 1e-4


def test_param_count_matches_the_paper(capsys):
    assert main(["model", "summary", "patt_lite", "--num-classes", "8", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["variant"] == "patt_lite"
    assert abs(summary["params"] - 1.10e6) / 1.10e6 < 0.05, summary["params"]
    assert 2.5e8 < summary["macs"] < 4.5e8


def test_macs_by_hand():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8*9*3*4 = 6912
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 8*8*9*4 = 2304
    x = keras.layers.SeparableConv2D(6, 2, strides=2)(x)  # 4*4*4*4 + 4*4*4*6 = 256 + 384
    x = keras.layers.Reshape((16, 6))(x)
    x = keras.layers.Dense(5)(x)  # 16*6*5 = 480
    model = keras.Model(inputs, x)
    assert [layer_macs(layer) for layer in model.layers[1:]] == [6912, 2304, 640, 0, 480]
    assert model_summary(model)["macs"] == 6912 + 2304 + 640 + 480


def test_token_rows_count_once_per_token_and_the_head_has_no_run_time_shapes():
    import tensorflow as tf

    from edge_fer.export.converters import keras_to_tflite
    from edge_fer.models.layers import FlatTokens, TokenGroups

    inputs = keras.Input((2, 2, 6))
    rows = FlatTokens()(inputs)
    x = keras.layers.Dense(5)(rows)  # 4 tokens * 6 * 5 = 120 per image
    model = keras.Model(inputs, TokenGroups(4)(x))
    assert [layer_macs(layer) for layer in model.layers[1:]] == [0, 120, 0]
    images = np.random.default_rng(0).normal(size=(3, 2, 2, 6)).astype(np.float32)
    expected = np.einsum("bhwc,cu->bhwu", images, model.layers[2].kernel.numpy()).reshape(3, 4, 5) + model.layers[2].bias.numpy()
    np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-5)

    patt_lite = create_model("patt_lite", 8, 64, weights="none")
    tflite = keras_to_tflite(patt_lite, "fp32")
    ops = {detail["op_name"] for detail in tf.lite.Interpreter(model_content=tflite)._get_ops_details()}
    assert {"RESHAPE", "FULLY_CONNECTED", "BATCH_MATMUL"} <= ops
    assert not ops & {"SHAPE", "STRIDED_SLICE", "PACK", "GATHER", "REDUCE_PROD"}, ops


def test_input_is_raw_rgb_pixels_and_112_derives_the_patch_kernel():
    model = create_model("patt_lite", 8, 112, weights="none")
    assert model.input_shape == (None, 112, 112, 3)
    assert model.get_layer("mobilenet_scale").get_config()["scale"] == pytest.approx(1 / 127.5)
    first = model.get_layer("patch_sepconv_1").get_config()
    assert first["kernel_size"] == (2, 2) and first["strides"] == (2, 2) and first["padding"] == "same"
    assert model.get_layer("patch_pointwise").output_shape == (None, 2, 2, 256)
    assert create_model("patt_lite", 8, 224, weights="none").get_layer("patch_sepconv_1").get_config()["kernel_size"] == (4, 4)


@pytest.mark.parametrize("size, kernel, stride", [(80, 2, 1), (96, 3, 1), (144, 3, 2)])
def test_sizes_the_paper_form_cannot_split_get_overlapping_valid_patches(size, kernel, stride):
    model = create_model("patt_lite", 8, size, weights="none")
    first = model.get_layer("patch_sepconv_1").get_config()
    assert first["kernel_size"] == (kernel, kernel) and first["strides"] == (stride, stride) and first["padding"] == "valid"
    assert model.get_layer("patch_sepconv_1").output_shape == (None, 4, 4, 256)
    assert model.get_layer("patch_pointwise").output_shape == (None, 2, 2, 256)


@pytest.mark.hostile("malformed-input")
def test_a_size_below_a_4x4_feature_map_is_refused():
    with pytest.raises(UserError, match="smaller than the 4×4 the patch block needs; use 64 pixels or more"):
        create_model("patt_lite", 8, 48, weights="none")


@pytest.mark.parametrize("variant", ["patt_lite", "mobilenet_v1"])
def test_alpha_narrows_the_backbone_patch_block_and_head(variant):
    wide, narrow = (create_model(variant, 8, 64, weights="none", alpha=alpha) for alpha in (1.0, 0.5))
    assert narrow.edge_fer["alpha"] == 0.5
    assert model_summary(narrow)["macs"] < 0.4 * model_summary(wide)["macs"]
    assert narrow.get_layer("conv_pw_1").output_shape[-1] == wide.get_layer("conv_pw_1").output_shape[-1] // 2
    if variant == "patt_lite":
        assert narrow.get_layer("patch_pointwise").output_shape == (None, 2, 2, 128)
        assert narrow.get_layer("token_groups").output_shape == (None, 4, 16)


@pytest.mark.hostile("malformed-input")
def test_an_alpha_without_imagenet_weights_is_refused_when_asked_for_them():
    with pytest.raises(UserError, match="ImageNet MobileNet weights exist for alpha 0.25, 0.5, 0.75, 1.0, not 0.6"):
        create_model("patt_lite", 8, 64, weights="imagenet", alpha=0.6)
    assert create_model("patt_lite", 8, 64, weights="none", alpha=0.6).edge_fer["alpha"] == 0.6


def test_imagenet_unavailable_falls_back_with_one_warning(monkeypatch, tmp_path, capsys):
    from edge_fer.models import backbone

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    backbone.find_imagenet_weights.cache_clear()
    monkeypatch.setattr(backbone, "_warned", False)

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    first = create_model("patt_lite", 8, 64, weights="imagenet")
    second = create_model("patt_lite", 8, 64, weights="imagenet")
    backbone.find_imagenet_weights.cache_clear()
    assert first.edge_fer["pretrained"] is False and second.edge_fer["pretrained"] is False
    assert capsys.readouterr().err.count("RANDOM INIT") == 1


def test_weights_from_a_local_file_and_from_the_keras_cache(monkeypatch, tmp_path):
    from edge_fer.models import backbone

    reference = keras.applications.MobileNet(input_shape=(64, 64, 3), include_top=False, weights=None)
    reference.get_layer("conv1").set_weights([np.full_like(w, 0.5) for w in reference.get_layer("conv1").get_weights()])
    weights_file = tmp_path / "models" / backbone.WEIGHTS_FILE
    weights_file.parent.mkdir()
    reference.save_weights(str(weights_file))

    model = create_model("patt_lite", 8, 64, weights=str(weights_file))
    assert model.edge_fer["pretrained"] is True
    np.testing.assert_array_equal(model.get_layer("conv1").get_weights()[0], 0.5)

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    backbone.find_imagenet_weights.cache_clear()
    cached = create_model("patt_lite", 8, 64, weights="imagenet")
    backbone.find_imagenet_weights.cache_clear()
    assert cached.edge_fer["pretrained"] is True and cached.edge_fer["weights_source"] == str(weights_file)

    with pytest.raises(UserError, match="does not exist"):
        create_model("patt_lite", 8, 64, weights=str(tmp_path / "missing.h5"))


@pytest.mark.hostile("data lost or wrong")
def test_a_weights_file_without_mobilenet_layers_is_refused_not_reported_pretrained(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense_other")])
    path = tmp_path / "other.h5"
    other.save_weights(str(path))
    with pytest.raises(UserError, match="holds no weights of MobileNet's layers"):
        create_model("patt_lite", 8, 64, weights=str(path))
