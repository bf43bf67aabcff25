import numpy as np

from edge_fer.data import load_dataset
from edge_fer.data.preprocess import to_model_input
from edge_fer.data.tfdata import AugmentConfig, make_dataset


def small_split():
    return load_dataset("synthetic", train_count=20, valid_count=7, test_count=7, image_size=24).splits["train"]


def test_eval_pipeline_matches_the_shared_preprocessing():
    split = small_split()
    batches = list(make_dataset(split, 40, 8, training=False))
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert images.shape == (20, 40, 40, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images, to_model_input(split.images, 40))
    np.testing.assert_array_equal(labels, split.labels)


def test_training_pipeline_shuffles_and_augments_within_pixel_range():
    split = small_split()
    augment = AugmentConfig(flip=True, contrast=0.4, brightness=0.1, zoom=0.2)
    images, labels = next(iter(make_dataset(split, 24, 20, training=True, seed=1, augment=augment)))
    images = images.numpy()
    assert images.min() >= 0 and images.max() <= 255
    assert sorted(labels.numpy().tolist()) == sorted(split.labels.tolist())
    assert not np.array_equal(labels.numpy(), split.labels)  # shuffled
    order = [int(np.argmax((split.labels == l))) for l in labels.numpy()]  # noqa: E741
    plain = to_model_input(split.images, 24)
    assert not np.allclose(images, plain[order])  # augmented


def test_cv2_resize_agrees_with_tensorflow_bilinear():
    import tensorflow as tf

    images = small_split().images[:4]
    ours = to_model_input(images, 56)
    theirs = tf.image.resize(tf.repeat(tf.cast(images, tf.float32), 3, axis=-1), [56, 56]).numpy()
    assert np.abs(ours - np.round(theirs)).max() <= 1.0


def test_augmentation_is_the_same_in_every_run_with_one_seed_and_new_every_epoch():
    from edge_fer.data import load_dataset

    split = load_dataset("synthetic", train_count=64, valid_count=7, test_count=7, image_size=40).splits["train"]
    augment = AugmentConfig(flip=True, contrast=0.3, zoom=0.2, brightness=0.1)

    def two_epochs():
        dataset = make_dataset(split, 40, 16, training=True, seed=3, augment=augment)
        return [np.concatenate([batch.numpy() for batch, _ in dataset]) for _ in range(2)]

    first, second = two_epochs(), two_epochs()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])
