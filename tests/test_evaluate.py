"""Metrics from labels and probabilities: calibration and prediction flips, on hand-worked cases."""

import numpy as np
import pytest

from edge_fer.evaluate import classification_metrics, expected_calibration_error, flip_rate


def test_calibration_error_is_the_gap_between_confidence_and_accuracy_per_bin():
    labels = np.array([0, 0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.55, 0.45]])
    # bin 0.9 (4 images): 3 right of 4 = 0.75 against 0.9 -> 0.15 * 4/5; bin 0.55 (1 image): right, 1 - 0.55 -> 0.45 / 5
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.15 * 0.8 + 0.45 * 0.2)
    perfect = np.eye(2)[labels]
    assert expected_calibration_error(labels, perfect) == 0.0
    assert classification_metrics(labels, probabilities, ["a", "b"])["ece"] == pytest.approx(0.21)


def test_flip_rate_counts_changed_top_classes_only():
    reference = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    quantized = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9], [0.55, 0.45]])  # two top classes changed
    assert flip_rate(reference, quantized) == 0.5 and flip_rate(reference, reference) == 0.0


def test_predicted_classes_travel_with_the_metrics():
    from edge_fer.evaluate import unpack_classes

    labels = np.array([0, 1, 2, 1])
    probabilities = np.eye(3)[[0, 2, 2, 1]]
    metrics = classification_metrics(labels, probabilities, ["a", "b", "c"])
    assert unpack_classes(metrics["predicted"], 4).tolist() == [0, 2, 2, 1]
    with pytest.raises(ValueError):
        unpack_classes(metrics["predicted"], 5)
