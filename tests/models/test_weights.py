"""models.weights: operations on a model's weights."""

import numpy as np

from edge_fer.models import create_model
from edge_fer.models.weights import copy_layer_weights, weights_digest, without_optimizer
from edge_fer.train.trainer import set_finetune


def test_weights_copy_layer_by_layer_whatever_the_trainable_flags():
    source = create_model("patt_lite", 7, 64, weights="none", seed=1)
    set_finetune(source, 10)  # moves frozen layers' weights to the end of the model-level list
    target = create_model("patt_lite", 7, 64, weights="none", seed=2)
    assert weights_digest(source.get_weights()) != weights_digest(target.get_weights())
    copy_layer_weights(source, target)
    for source_layer, target_layer in zip(source.layers, target.layers):
        for a, b in zip(source_layer.get_weights(), target_layer.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_a_compiled_model_is_saved_from_a_copy_without_its_optimizer():
    model = create_model("patt_lite", 7, 64, weights="none", seed=1)
    assert without_optimizer(model, lambda: None) is model  # nothing attached: the model itself
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    plain = without_optimizer(model, lambda: create_model("patt_lite", 7, 64, weights="none", seed=2))
    assert plain is not model and getattr(plain, "optimizer", None) is None
    assert weights_digest(plain.get_weights()) == weights_digest(model.get_weights())
