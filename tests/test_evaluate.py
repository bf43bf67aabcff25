"""Metrics from labels and probabilities: calibration and prediction flips, on hand-worked cases."""

import numpy as np
import pytest

from edge_fer.evaluate import classification_metrics, expected_calibration_error, flip_rate, vote_kl


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


def test_kl_to_the_votes_is_zero_for_a_prediction_equal_to_them_and_grows_with_the_gap():
    votes = np.array([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    assert vote_kl(votes, votes) == pytest.approx(0.0, abs=1e-6)
    # image 1: 0.7 ln(0.7/0.5) + 0.3 ln(0.3/0.5); image 2: 1 ln(1/0.8); a class nobody voted for adds nothing
    predicted = np.array([[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
    expected = (0.7 * np.log(0.7 / 0.5) + 0.3 * np.log(0.3 / 0.5) + np.log(1 / 0.8)) / 2
    assert vote_kl(votes, predicted) == pytest.approx(expected, rel=1e-6)
    metrics = classification_metrics(np.array([0, 2]), predicted, ["a", "b", "c"], votes)
    assert metrics["vote_kl"] == pytest.approx(expected, rel=1e-6)
    assert "vote_kl" not in classification_metrics(np.array([0, 2]), predicted, ["a", "b", "c"])
    # a zero where the annotators voted (an int8 file's exact 0) is floored, not an infinity
    assert np.isfinite(vote_kl(votes, np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])))
