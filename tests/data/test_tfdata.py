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


def vote_split(count=400):
    """Every image has the same votes: 0.6 / 0.3 / 0.1 / 0 over four classes."""
    from edge_fer.data.base import Split

    votes = np.tile(np.asarray([[0.6, 0.3, 0.1, 0.0]], np.float32), (count, 1))
    return Split(images=np.zeros((count, 8, 8, 1), np.uint8), labels=np.zeros(count, np.int64),
                 files=np.asarray([f"{i}.png" for i in range(count)]), soft_labels=votes)


def drawn_epochs(split, epochs: int, seed: int = 5) -> list[np.ndarray]:
    dataset = make_dataset(split, 8, 50, training=True, seed=seed, soft_labels=True, draw_labels=True,
                           augment=AugmentConfig(flip=True, contrast=0.2, zoom=0.0))
    return [np.concatenate([labels.numpy() for _, labels in dataset]) for _ in range(epochs)]


def test_drawn_labels_are_one_hot_with_the_vote_frequencies_and_new_every_epoch():
    first, second = drawn_epochs(vote_split(), 2)
    for labels in (first, second):
        assert set(np.unique(labels)) <= {0.0, 1.0} and np.all(labels.sum(axis=1) == 1)
    frequencies = np.concatenate([first, second]).mean(axis=0)
    np.testing.assert_allclose(frequencies, [0.6, 0.3, 0.1, 0.0], atol=0.05)  # 800 draws: 3 standard errors
    assert not np.array_equal(first.argmax(1), second.argmax(1))
    again = drawn_epochs(vote_split(), 2)
    np.testing.assert_array_equal(first, again[0])  # the same seed draws the same labels
    np.testing.assert_array_equal(second, again[1])


def test_labels_are_drawn_for_training_only_and_without_changing_the_augmentation():
    split = vote_split(100)
    evaluated = np.concatenate([labels.numpy() for _, labels in make_dataset(split, 8, 50, training=False,
                                                                              soft_labels=True, draw_labels=True)])
    np.testing.assert_array_equal(evaluated, split.soft_labels)  # scoring keeps the distributions

    split.images[:] = np.random.default_rng(0).integers(0, 255, split.images.shape, dtype=np.uint8)
    augment = AugmentConfig(flip=True, contrast=0.3, zoom=0.2)

    def images(draw: bool):
        dataset = make_dataset(split, 8, 50, training=True, seed=2, augment=augment, soft_labels=True, draw_labels=draw)
        return np.concatenate([batch.numpy() for batch, _ in dataset])

    np.testing.assert_array_equal(images(True), images(False))


def recipe_batches(split, **recipe):
    dataset = make_dataset(split, 24, 20, training=True, seed=4, augment=AugmentConfig(flip=True, contrast=0.2, zoom=0.1),
                           **recipe)
    images, labels = next(iter(dataset))
    return images.numpy(), labels.numpy()


def test_erasing_and_mixup_leave_the_rest_of_the_augmentation_as_it_was():
    split = small_split()
    plain_images, plain_labels = recipe_batches(split)
    erased, erased_labels = recipe_batches(split, erasing=1.0)
    np.testing.assert_array_equal(erased_labels, plain_labels)
    changed = (erased != plain_images).any(axis=-1)  # (n, h, w): pixels the erasing replaced
    for image_changed in changed:
        rows, cols = np.nonzero(image_changed)
        assert 0.02 * 24 * 24 * 0.5 <= len(rows) <= 0.25 * 24 * 24 * 1.3  # one rectangle of 2-25% of the image
        box = image_changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.mean() > 0.9  # a rectangle (noise may equal a pixel by chance)
    untouched, _ = recipe_batches(split, erasing=0.0)
    np.testing.assert_array_equal(untouched, plain_images)


def test_mixup_blends_each_image_and_its_one_hot_label_by_one_weight():
    split = small_split()
    plain_images, plain_labels = recipe_batches(split, one_hot=7)
    assert plain_labels.shape == (20, 7) and set(np.unique(plain_labels)) == {0.0, 1.0}
    mixed, mixed_labels = recipe_batches(split, one_hot=7, mixup=0.4)
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
    partner = plain_labels[::-1]
    for i in range(20):
        if np.array_equal(plain_labels[i], partner[i]):
            continue
        weight = mixed_labels[i] @ plain_labels[i]  # the share of image i's own class
        expected = weight * plain_images[i] + (1 - weight) * plain_images[::-1][i]
        np.testing.assert_allclose(mixed[i], expected, atol=1e-3)
    assert not np.allclose(mixed, plain_images)


def test_cutmix_pastes_one_box_of_the_partner_image_and_mixes_the_labels_by_its_area():
    split = small_split()
    plain_images, plain_labels = recipe_batches(split, one_hot=7)
    mixed, mixed_labels = recipe_batches(split, one_hot=7, cutmix=1.0)
    partner_images, partner_labels = plain_images[::-1], plain_labels[::-1]
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, rtol=1e-6)
    pasted_somewhere = 0
    for i in range(20):
        pasted = (mixed[i] != plain_images[i]).any(axis=-1)
        np.testing.assert_array_equal(mixed[i][pasted], partner_images[i][pasted])  # every changed pixel is the partner's
        np.testing.assert_array_equal(mixed[i][~pasted], plain_images[i][~pasted])
        if pasted.any():
            rows, cols = np.nonzero(pasted)
            assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].mean() > 0.9  # one box
            pasted_somewhere += 1
        if not np.array_equal(plain_labels[i], partner_labels[i]):
            share = mixed_labels[i] @ partner_labels[i]  # the partner's class's share: the box's area
            assert abs(share - pasted.mean()) < 0.03, (share, pasted.mean())
    assert pasted_somewhere >= 15


def test_recipe_values_out_of_range_are_refused_in_one_line():
    import pytest

    from edge_fer.errors import UserError
    from edge_fer.train.config import TrainSection, check_recipe

    for bad in ({"label_smoothing": 1.0}, {"mixup": -0.1}, {"erasing": 1.5}, {"cutmix": -1.0}, {"ema": 1.0}):
        with pytest.raises(UserError, match=next(iter(bad))):
            check_recipe(TrainSection(**bad))
    check_recipe(TrainSection(label_smoothing=0.1, mixup=0.2, erasing=0.25))


def test_a_scratch_schedule_that_rises_or_outlasts_its_stage_is_refused():
    import pytest

    from edge_fer.errors import UserError
    from edge_fer.train.config import ScratchStage, TrainSection, check_recipe

    for bad in ({"warmup_epochs": 20.5}, {"warmup_epochs": -1.0}, {"final_learning_rate_fraction": 1.5},
                {"learning_rate": 0.0}):
        with pytest.raises(UserError, match=f"train.scratch.{next(iter(bad))}"):
            check_recipe(TrainSection(scratch=ScratchStage(epochs=20, **bad)))
    check_recipe(TrainSection(scratch=ScratchStage(epochs=20, warmup_epochs=0.0, final_learning_rate_fraction=1.0)))
    check_recipe(TrainSection(scratch=ScratchStage(epochs=1, warmup_epochs=1.0)))
