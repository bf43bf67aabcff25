"""tf.data input pipeline for training: resize once (uint8, in memory), then shuffle, batch and augment.

Augmentation is per image and vectorised over the batch: horizontal flip and contrast (the paper's),
plus optional brightness and a random zoom/shift crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_fer.data.base import Split
from edge_fer.data.preprocess import resize_images


@dataclass
class AugmentConfig:
    flip: bool = True
    contrast: float = 0.3  # factor drawn from [1 - c, 1 + c]
    brightness: float = 0.0  # offset drawn from [-b, b] × 255
    zoom: float = 0.1  # crop side drawn from [1 - z, 1] of the image, at a random position


def make_dataset(split: Split, image_size: int, batch_size: int, *, training: bool, seed: int = 0,
                 augment: AugmentConfig | None = None, soft_labels: bool = False, repeat: bool = False,
                 draw_labels: bool = False, one_hot: int = 0, mixup: float = 0.0, erasing: float = 0.0,
                 cutmix: float = 0.0):
    """draw_labels (with soft labels, training only): Barsoum et al.'s probabilistic label drawing: each image's
    target is a one-hot label drawn from its vote distribution, anew in every epoch. one_hot (a class count): hard
    labels as one row per class (for label smoothing, mixup and cutmix). erasing, mixup and cutmix (training only) draw
    after every other draw, so a run without them augments exactly as before they existed."""
    import tensorflow as tf

    if draw_labels and not soft_labels:
        raise ValueError("drawing labels needs the vote distributions (soft labels)")
    images = resize_images(split.images, image_size)
    targets = split.soft_labels if soft_labels else split.labels
    if targets is None:
        raise ValueError("soft labels were asked for but this split has none (use label mode 'probability')")
    if (mixup > 0 or cutmix > 0) and not (soft_labels or one_hot):
        raise ValueError("mixup and cutmix blend labels: they need soft or one-hot labels")
    if one_hot and not soft_labels:
        targets, soft_labels = np.eye(one_hot, dtype=np.float32)[targets], True
    dataset = tf.data.Dataset.from_tensor_slices((images, targets.astype(np.float32 if soft_labels else np.int64)))
    if training:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    # each batch's augmentation comes from its own key: a stream that is the same in every run with this seed
    # and new in every epoch
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip((keys, dataset.batch(batch_size, drop_remainder=False)))
    augment = augment if (training and augment is not None) else None
    draw_labels = draw_labels and training
    erasing, mixup, cutmix = (erasing, mixup, cutmix) if training else (0.0, 0.0, 0.0)

    def to_float(key, batch_and_labels):
        batch, labels = batch_and_labels
        batch = tf.cast(batch, tf.float32)
        if batch.shape[-1] == 1:
            batch = tf.repeat(batch, 3, axis=-1)
        draws = BatchDraws(seed, key)
        if augment is not None:
            batch = apply_augment(batch, augment, draws, image_size)
        if draw_labels:  # after the augmentation's draws, so a run's augmentation does not change with this setting
            labels = draw_one_hot(labels, draws)
        if erasing > 0:
            batch = random_erase(batch, erasing, draws)
        if mixup > 0:
            batch, labels = mix_up(batch, labels, mixup, draws)
        if cutmix > 0:
            batch, labels = cut_mix(batch, labels, cutmix, draws)
        return batch, labels

    return dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class BatchDraws:
    """Random numbers for one batch, from (seed, the batch's key) alone. A generator shared by the parallel map
    hands its numbers to whichever batch asks first, so two runs with one seed augmented differently."""

    def __init__(self, seed: int, batch_key):
        import tensorflow as tf

        self.key = tf.stack([tf.constant(seed, tf.int64), tf.cast(batch_key, tf.int64)])
        self.draws = 0

    def uniform(self, shape, minval=0.0, maxval=1.0):
        import tensorflow as tf

        self.draws += 1  # a Python counter: the same draw order every trace
        key = tf.random.experimental.stateless_fold_in(self.key, self.draws)
        return tf.random.stateless_uniform(shape, seed=key, minval=minval, maxval=maxval)

    def gamma(self, shape, alpha: float):
        import tensorflow as tf

        self.draws += 1
        key = tf.random.experimental.stateless_fold_in(self.key, self.draws)
        return tf.random.stateless_gamma(shape, seed=key, alpha=alpha)

    def beta(self, shape, alpha: float):
        """Beta(alpha, alpha), as the ratio of two gamma draws."""
        first, second = self.gamma(shape, alpha), self.gamma(shape, alpha)
        return first / (first + second)


def random_erase(batch, probability: float, generator: "BatchDraws"):
    """Zhong et al.'s random erasing: with this probability per image, a rectangle of 2-25% of its area, of aspect
    ratio 0.3-3.3, is replaced by uniform noise."""
    import tensorflow as tf

    count, height, width = tf.shape(batch)[0], tf.shape(batch)[1], tf.shape(batch)[2]
    chosen = generator.uniform([count]) < probability
    area = generator.uniform([count], 0.02, 0.25)
    aspect = tf.exp(generator.uniform([count], np.log(0.3), np.log(3.3)))
    box_h, box_w = tf.minimum(tf.sqrt(area * aspect), 1.0), tf.minimum(tf.sqrt(area / aspect), 1.0)
    top, left = generator.uniform([count]) * (1.0 - box_h), generator.uniform([count]) * (1.0 - box_w)
    mask = box_mask(top, top + box_h, left, left + box_w, height, width) & chosen[:, None, None]
    noise = generator.uniform(tf.shape(batch), 0.0, 255.0)
    return tf.where(mask[..., None], noise, batch)


def box_mask(top, bottom, left, right, height, width):
    """(images, height, width) booleans: the pixels whose centres lie in each image's box (edges as fractions)."""
    import tensorflow as tf

    rows = (tf.cast(tf.range(height), tf.float32) + 0.5) / tf.cast(height, tf.float32)
    cols = (tf.cast(tf.range(width), tf.float32) + 0.5) / tf.cast(width, tf.float32)
    inside_rows = (rows[None, :] >= top[:, None]) & (rows[None, :] < bottom[:, None])
    inside_cols = (cols[None, :] >= left[:, None]) & (cols[None, :] < right[:, None])
    return inside_rows[:, :, None] & inside_cols[:, None, :]


def cut_mix(batch, labels, alpha: float, generator: "BatchDraws"):
    """Yun et al.'s CutMix within the batch: into image i, a box of image n-1-i whose side is sqrt(1 - w) of the
    image's, w from Beta(alpha, alpha), centred at random and cut at the edges; the labels mixed by the pixels each
    image keeps."""
    import tensorflow as tf

    count, height, width = tf.shape(batch)[0], tf.shape(batch)[1], tf.shape(batch)[2]
    side = tf.sqrt(1.0 - generator.beta([count], alpha))
    centre_row, centre_col = generator.uniform([count]), generator.uniform([count])
    mask = box_mask(tf.maximum(centre_row - side / 2, 0.0), tf.minimum(centre_row + side / 2, 1.0),
                    tf.maximum(centre_col - side / 2, 0.0), tf.minimum(centre_col + side / 2, 1.0), height, width)
    pasted = tf.reduce_mean(tf.cast(mask, labels.dtype), axis=[1, 2])[:, None]
    mixed = tf.where(mask[..., None], tf.reverse(batch, axis=[0]), batch)
    return mixed, (1.0 - pasted) * labels + pasted * tf.reverse(labels, axis=[0])


def mix_up(batch, labels, alpha: float, generator: "BatchDraws"):
    """Zhang et al.'s mixup within the batch: image i blended with image n-1-i by a weight from Beta(alpha, alpha),
    its label alike."""
    import tensorflow as tf

    count = tf.shape(batch)[0]
    weight = generator.beta([count], alpha)
    images_weight = tf.reshape(weight, [-1, 1, 1, 1])
    label_weight = tf.cast(tf.reshape(weight, [-1, 1]), labels.dtype)
    mixed = images_weight * batch + (1.0 - images_weight) * tf.reverse(batch, axis=[0])
    return mixed, label_weight * labels + (1.0 - label_weight) * tf.reverse(labels, axis=[0])


def draw_one_hot(distributions, generator: BatchDraws):
    """One label per row of `distributions` (batch, classes; rows sum to 1), drawn with those probabilities."""
    import tensorflow as tf

    cumulative = tf.cumsum(distributions, axis=1)
    point = generator.uniform([tf.shape(distributions)[0], 1]) * cumulative[:, -1:]
    drawn = tf.reduce_sum(tf.cast(cumulative <= point, tf.int32), axis=1)
    drawn = tf.minimum(drawn, tf.shape(distributions)[1] - 1)  # a point on the last edge
    return tf.one_hot(drawn, tf.shape(distributions)[1], dtype=distributions.dtype)


def apply_augment(batch, augment: AugmentConfig, generator: BatchDraws, image_size: int):
    import tensorflow as tf

    count = tf.shape(batch)[0]
    if augment.zoom > 0:
        side = generator.uniform([count], 1.0 - augment.zoom, 1.0)
        top = generator.uniform([count]) * (1.0 - side)
        left = generator.uniform([count]) * (1.0 - side)
        boxes = tf.stack([top, left, top + side, left + side], axis=1)
        batch = tf.image.crop_and_resize(batch, boxes, tf.range(count), [image_size, image_size])
    if augment.flip:
        flip = generator.uniform([count, 1, 1, 1]) < 0.5
        batch = tf.where(flip, tf.reverse(batch, axis=[2]), batch)
    if augment.contrast > 0:
        factor = generator.uniform([count, 1, 1, 1], 1.0 - augment.contrast, 1.0 + augment.contrast)
        mean = tf.reduce_mean(batch, axis=[1, 2], keepdims=True)
        batch = (batch - mean) * factor + mean
    if augment.brightness > 0:
        batch = batch + generator.uniform([count, 1, 1, 1], -augment.brightness, augment.brightness) * 255.0
    return tf.clip_by_value(batch, 0.0, 255.0)
