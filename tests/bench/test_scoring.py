"""The bench scores every artifact on the test split and on the validation split, from one images file."""

import numpy as np

from edge_fer.bench.runner import ScoringData

SPEC = {"name": "synthetic", "options": {"train_count": 4, "valid_count": 6, "test_count": 5}}


def test_the_images_file_holds_test_then_validation_and_scores_split_them(tmp_path):
    scoring = ScoringData(SPEC, tmp_path)
    images = np.load(scoring.images_for(64))
    test, valid = scoring.dataset.splits["test"], scoring.dataset.splits["valid"]
    assert len(images) == len(test.labels) + len(valid.labels) == 11
    classes = len(scoring.dataset.classes)
    right = np.eye(classes)[np.concatenate([test.labels, valid.labels])]
    wrong_valid = right.copy()
    wrong_valid[len(test.labels):] = np.roll(wrong_valid[len(test.labels):], 1, axis=1)  # every validation answer wrong
    scores = scoring.scores(wrong_valid)
    assert scores["scores"]["accuracy"] == 1.0 and scores["scores"]["count"] == 5
    assert scores["scores_valid"]["accuracy"] == 0.0 and scores["scores_valid"]["count"] == 6


def test_a_dataset_without_a_validation_split_scores_test_only(tmp_path, monkeypatch):
    scoring = ScoringData(SPEC, tmp_path)
    scoring.valid = None
    assert len(np.load(scoring.images_for(64))) == 5
    assert set(scoring.scores(np.eye(len(scoring.dataset.classes))[scoring.split.labels])) == {"scores"}
