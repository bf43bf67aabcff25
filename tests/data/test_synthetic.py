import numpy as np
import pytest

from edge_fer.data import load_dataset
from edge_fer.data.synthetic import CLASSES, generate


def test_deterministic_from_seed_and_balanced():
    first, labels = generate(70, 32, seed=3)
    again, labels_again = generate(70, 32, seed=3)
    other, _ = generate(70, 32, seed=4)
    assert np.array_equal(first, again) and np.array_equal(labels, labels_again)
    assert not np.array_equal(first, other)
    assert np.bincount(labels).tolist() == [10] * len(CLASSES)
    assert first.shape == (70, 32, 32, 1) and first.dtype == np.uint8


def test_says_it_is_synthetic_and_needs_no_root():
    dataset = load_dataset("synthetic", train_count=14, valid_count=7, test_count=7, image_size=24)
    assert dataset.synthetic and "SYNTHETIC" in dataset.display_name
    assert dataset.summary()["synthetic"] is True
    assert {k: len(v) for k, v in dataset.splits.items()} == {"train": 14, "valid": 7, "test": 7}
    assert dataset.image_shape == (24, 24, 1)


def test_splits_differ():
    dataset = load_dataset("synthetic", train_count=14, valid_count=14, test_count=14)
    assert not np.array_equal(dataset.splits["train"].images, dataset.splits["test"].images)


def test_learnable_by_a_small_cnn():
    """A tiny CNN trained for seconds gets far above chance (1/7, so > 3.5× chance) on held-out synthetic faces."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    train_x, train_y = generate(1400, 32, seed=11)
    test_x, test_y = generate(350, 32, seed=12)
    model = keras.Sequential([
        keras.layers.Input((32, 32, 1)),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(CLASSES), activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_x, train_y, epochs=25, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(test_x, test_y, verbose=0)
    assert accuracy > 0.5, f"synthetic data should be learnable; got {accuracy:.2f} (chance {1 / len(CLASSES):.2f})"


@pytest.mark.parametrize("bad", [{"train_count": 0}, {"colour": "red"}])
def test_bad_options(bad):
    from edge_fer.errors import DataError

    with pytest.raises(DataError):
        load_dataset("synthetic", **bad)
