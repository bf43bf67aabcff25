"""Knowledge distillation (Hinton et al. 2015): the student learns from the data's labels and from the averaged
probabilities of one or more trained teachers, softened by a temperature.

The teachers run inside the training input pipeline on the batch the student is about to see (after
augmentation), and their probabilities travel beside the labels: the target of a batch is
[labels (k columns) | teacher probabilities (k columns)]. The student stays a plain Keras model, so every schedule,
callback, checkpoint and resume works unchanged; the loss and the accuracy metric read the two halves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_fer import ui
from edge_fer.errors import UserError

EPSILON = 1e-7


@dataclass
class DistillSection:
    teacher: str | list = field(default_factory=list)  # trained models (.keras or run folders); several = an ensemble
    temperature: float = 4.0
    weight: float = 0.7  # share of the distillation term; 1 - weight goes to the labels


def teacher_paths(value) -> list[str]:
    paths = [value] if isinstance(value, str) else list(value or [])
    if not all(isinstance(path, str) and path for path in paths):
        raise UserError(f"train.distill.teacher must be a path or a list of paths, got {value!r}")
    return paths


def check_distill(section: DistillSection) -> None:
    if not 0.0 <= section.weight <= 1.0:
        raise UserError(f"train.distill.weight must be between 0 and 1, got {section.weight}")
    if not 0.0 < section.temperature <= 100.0:
        raise UserError(f"train.distill.temperature must be above 0 and at most 100, got {section.temperature}")


def load_teachers(paths: list[str], classes: list[str], image_size: int) -> list:
    """Each teacher rebuilt from the registry (weights only); its classes must be the student's. A teacher trained at
    another size sees the student's images resized to its own."""
    from edge_fer.models.loading import load_model

    teachers = []
    for path in paths:
        model, meta = load_model(path)
        if list(meta.get("classes", [])) != list(classes):
            raise UserError(f"teacher {path}: its classes {meta.get('classes')} are not the student's {list(classes)}")
        if model.input_shape[1] != image_size:
            ui.log(f"teacher {path} was trained at {model.input_shape[1]} px: it sees the student's {image_size} px "
                   f"images resized to that")
        model.trainable = False
        teachers.append(model)
    return teachers


def ensemble_probabilities(teachers: list, images):
    import tensorflow as tf

    def seen_by(teacher):
        size = teacher.input_shape[1]
        return images if images.shape[1] == size else tf.image.resize(images, (size, size))

    return tf.add_n([teacher(seen_by(teacher), training=False) for teacher in teachers]) / len(teachers)


def with_teacher_targets(dataset, teachers: list, num_classes: int, class_weight: dict | None):
    """(images, labels) batches → (images, [one-hot or soft labels | teacher probabilities], sample weights).
    Class weights become per-sample weights of the label's class (argmax for soft labels), as Keras does."""
    import tensorflow as tf

    weights = tf.constant([class_weight.get(i, 1.0) if class_weight else 1.0 for i in range(num_classes)], tf.float32)

    def add_teacher(images, labels):
        if labels.shape.rank == 1:
            hard_index = tf.cast(labels, tf.int32)
            labels = tf.one_hot(hard_index, num_classes)
        else:
            hard_index = tf.argmax(labels, axis=-1, output_type=tf.int32)
        taught = ensemble_probabilities(teachers, images)
        return images, tf.concat([tf.cast(labels, tf.float32), taught], axis=-1), tf.gather(weights, hard_index)

    return dataset.map(add_teacher).prefetch(tf.data.AUTOTUNE)


def hard_labels(y_true, num_classes: int):
    """Class indices from sparse labels, one-hot or soft labels, or the [labels | teacher] target."""
    import tensorflow as tf

    if y_true.shape.rank == 1 or y_true.shape[-1] == 1:
        return tf.cast(tf.reshape(y_true, [-1]), tf.int64)
    return tf.argmax(y_true[:, :num_classes], axis=-1)


def make_accuracy(num_classes: int):
    import tensorflow as tf

    def accuracy(y_true, y_pred):  # named so the logs keep 'accuracy' and 'val_accuracy'
        return tf.cast(tf.equal(hard_labels(y_true, num_classes), tf.argmax(y_pred, axis=-1)), tf.float32)

    return accuracy


def make_distillation_loss(num_classes: int, temperature: float, weight: float):
    """(1 - weight) · CE(labels, student) + weight · T² · KL(teacher_T ‖ student_T). The student ends in a softmax, so
    its temperature-T distribution is softmax(log p / T); the same for the teacher's averaged probabilities.
    Validation batches carry labels only and get the plain cross-entropy."""
    import tensorflow as tf

    def soften(probabilities):
        return tf.nn.log_softmax(tf.math.log(probabilities + EPSILON) / temperature, axis=-1)

    def distillation_loss(y_true, y_pred):
        if y_true.shape.rank == 1 or y_true.shape[-1] == 1:
            return tf.keras.losses.sparse_categorical_crossentropy(tf.reshape(y_true, [-1]), y_pred)
        labels = y_true[:, :num_classes]
        cross_entropy = tf.keras.losses.categorical_crossentropy(labels, y_pred)
        if y_true.shape[-1] == num_classes:
            return cross_entropy
        log_teacher, log_student = soften(y_true[:, num_classes:]), soften(y_pred)
        divergence = tf.reduce_sum(tf.exp(log_teacher) * (log_teacher - log_student), axis=-1)
        return (1.0 - weight) * cross_entropy + weight * temperature ** 2 * divergence

    return distillation_loss


def teacher_report(paths: list[str], teachers: list, test_images: np.ndarray | None, test_labels, classes,
                   section: DistillSection) -> dict:
    """The teachers' own test accuracy (each at its own size, and their ensemble), measured here."""
    from edge_fer.evaluate import classification_metrics, predict_keras

    record = {"teacher": [str(Path(p)) for p in paths], "temperature": section.temperature, "weight": section.weight}
    if test_images is None:
        return record
    probabilities = [predict_keras(teacher, test_images, teacher.input_shape[1]) for teacher in teachers]
    record["teacher_test_accuracy"] = [round(float(classification_metrics(test_labels, p, classes)["accuracy"]), 4)
                                       for p in probabilities]
    ensemble = classification_metrics(test_labels, np.mean(probabilities, axis=0), classes)
    record["ensemble_test_accuracy"] = round(float(ensemble["accuracy"]), 4)
    record["ensemble_test_macro_f1"] = round(float(ensemble.get("macro_f1", 0.0)), 4)
    return record
