"""Accuracy, macro-F1, per-class accuracy and the confusion matrix, from labels and probabilities."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
                           votes: np.ndarray | None = None) -> dict:
    """`votes`, where the dataset has them (FERPlus: each image's annotator distribution), adds the mean KL
    divergence from the votes to the predicted distribution."""
    predicted = np.argmax(probabilities, axis=1)
    indices = list(range(len(classes)))
    confusion = confusion_matrix(labels, predicted, labels=indices)
    support = confusion.sum(axis=1)
    per_class = {
        name: (float(confusion[i, i] / support[i]) if support[i] else None) for i, name in enumerate(classes)
    }
    return {
        "count": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
        "macro_f1": float(f1_score(labels, predicted, labels=[i for i in indices if support[i]], average="macro", zero_division=0)),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
        "classes": list(classes),
        "correct_bits": pack_correct(predicted == labels),
        "predicted": pack_classes(predicted),
        "ece": expected_calibration_error(labels, probabilities),
        **({"vote_kl": vote_kl(votes, probabilities)} if votes is not None else {}),
    }


def vote_kl(votes: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Mean KL(votes || prediction) in nats: how far each predicted distribution is from what the annotators said,
    not only whether its top class matches theirs. A prediction is floored at 1e-7 (an int8 file's exact zeros)."""
    if not len(votes):
        return None
    votes = np.asarray(votes, dtype=np.float64)
    predicted = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, None)
    predicted /= predicted.sum(axis=1, keepdims=True)
    ratio = np.where(votes > 0, votes / np.where(votes > 0, predicted, 1.0), 1.0)
    return float(np.mean(np.sum(votes * np.log(ratio), axis=1)))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float | None:
    """How far the top probability is from the accuracy it claims (Guo et al. 2017): the images binned by their top
    probability, each bin's |accuracy - mean confidence| weighted by its share of the images."""
    if not len(labels):
        return None
    confidence = np.max(probabilities, axis=1)
    correct = np.argmax(probabilities, axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gaps = [abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
            for b in range(bins) if np.any(which == b)]
    return float(np.sum(gaps))


def flip_rate(reference: np.ndarray, probabilities: np.ndarray) -> float:
    """The share of images whose top class differs from the reference model's (quantization's prediction flips)."""
    return float(np.mean(np.argmax(reference, axis=1) != np.argmax(probabilities, axis=1)))


def pack_correct(correct: np.ndarray) -> str:
    """Which images a model got right, one bit each (base64): what a paired test between two models needs."""
    import base64

    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def pack_classes(predicted: np.ndarray) -> str:
    """Each image's predicted class, one byte each (base64): two files' flips against each other, later."""
    import base64

    return base64.b64encode(np.asarray(predicted, dtype=np.uint8).tobytes()).decode("ascii")


def unpack_classes(text: str, count: int) -> np.ndarray:
    import base64

    classes = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    if len(classes) != count:
        raise ValueError(f"predicted holds {len(classes)} images, not the {count} it claims")
    return classes


def unpack_correct(text: str, count: int) -> np.ndarray:
    import base64

    bits = np.unpackbits(np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8))
    if len(bits) < count or bits[count:].any():
        raise ValueError(f"correct_bits holds {len(bits)} bits, not the {count} images it claims")
    return bits[:count].astype(bool)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's exact test of two models on the SAME images: only the images one got right and the other wrong
    count. p is two-sided; a small p says the difference in accuracy is not chance."""
    from scipy.stats import binomtest

    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"a paired test needs the same images: {correct_a.shape} against {correct_b.shape}")
    only_a, only_b = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p": float(p)}


def wilson_interval(accuracy: float | None, count: int | None) -> tuple[float, float] | None:
    """The 95% Wilson score interval of an accuracy measured on `count` images (None where either is missing):
    unlike the normal approximation it stays inside [0, 1] and holds near 0 and 1 and for small counts."""
    from scipy.stats import binomtest

    if accuracy is None or not count:
        return None
    interval = binomtest(round(accuracy * count), count).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def predict_keras(model, images: np.ndarray, image_size: int, batch_size: int = 64) -> np.ndarray:
    """Probabilities from a Keras model for uint8 dataset images, through the shared preprocessing."""
    from edge_fer.data.preprocess import to_model_input

    outputs = []
    for start in range(0, len(images), batch_size):
        batch = to_model_input(images[start:start + batch_size], image_size)
        outputs.append(np.asarray(model(batch, training=False)))
    return np.concatenate(outputs) if outputs else np.zeros((0, model.output_shape[-1]), np.float32)
