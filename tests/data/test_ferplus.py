import numpy as np
import pytest

from edge_fer.data import get_adapter, load_dataset
from edge_fer.data.ferplus import EMOTIONS, argmax_label, majority_label, vote_distribution
from tests.helpers import FERPLUS_ROOT, write_png

# Hand-worked vote rows: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
HAND_WORKED = [
    # votes                           majority  argmax   why
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], None, 0),  # 1s dropped -> 4,3,2 of 9: 4 is not > 4.5
    ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], 0, 0),  # 1s dropped -> 6 of 8 > 4
    ([5, 0, 0, 3, 1, 0, 0, 0, 1, 0], 0, 0),  # 1s dropped -> 5 of 8 > 4
    ([0, 10, 0, 0, 0, 0, 0, 0, 0, 0], 1, 1),
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None, 0),  # every vote dropped; argmax: tie -> first
    ([0, 0, 0, 0, 0, 0, 0, 0, 3, 7], None, None),  # no emotion vote at all
    ([0, 0, 0, 0, 0, 0, 0, 0, 7, 3], None, None),
    ([2, 0, 0, 0, 0, 0, 0, 0, 8, 0], None, 0),  # majority is unknown -> dropped
    ([0, 0, 0, 0, 0, 0, 0, 6, 0, 4], 7, 7),  # contempt 6 of 10
    ([0, 0, 0, 0, 0, 0, 0, 5, 0, 5], None, 7),  # exactly half is not a majority
    ([0, 0, 3, 0, 0, 0, 4, 0, 0, 0], 6, 6),  # 4 of 7 > 3.5
]


@pytest.mark.parametrize("votes,majority,argmax", HAND_WORKED)
def test_label_modes_on_hand_worked_rows(votes, majority, argmax):
    assert majority_label(np.array(votes)) == majority
    assert argmax_label(np.array(votes)) == argmax


def test_vote_distribution_is_over_the_eight_emotions():
    distribution = vote_distribution(np.array([4, 0, 0, 1, 3, 2, 0, 0, 3, 1]))
    np.testing.assert_allclose(distribution, [0.4, 0, 0, 0.1, 0.3, 0.2, 0, 0], atol=1e-6)
    assert vote_distribution(np.array([0] * 8 + [5, 5])) is None


def make_ferplus(root, rows_per_split=None):
    rows_per_split = rows_per_split or {
        "FER2013Train": [[0, 9, 0, 0, 0, 0, 0, 0, 1, 0], [8, 0, 0, 0, 0, 0, 0, 0, 2, 0], [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]],
        "FER2013Valid": [[0, 0, 10, 0, 0, 0, 0, 0, 0, 0]],
        "FER2013Test": [[0, 0, 0, 7, 3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]],
    }
    counter = 0
    for folder, rows in rows_per_split.items():
        lines = []
        for votes in rows:
            name = f"fer{counter:07d}.png"
            write_png(root / folder / name, seed=counter)
            lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
            counter += 1
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_small_fixture_in_every_label_mode(tmp_path):
    root = make_ferplus(tmp_path / "ferplus")
    majority = load_dataset("ferplus", root, label_mode="majority")
    assert {k: len(v) for k, v in majority.splits.items()} == {"train": 2, "valid": 1, "test": 1}
    assert majority.splits["train"].labels.tolist() == [1, 0]
    assert majority.splits["test"].labels.tolist() == [3]
    assert majority.image_shape == (48, 48, 1)
    assert majority.splits["train"].images.dtype == np.uint8

    argmax = load_dataset("ferplus", root, label_mode="argmax")
    assert {k: len(v) for k, v in argmax.splits.items()} == {"train": 3, "valid": 1, "test": 1}

    probability = load_dataset("ferplus", root, label_mode="probability")
    soft = probability.splits["test"].soft_labels
    np.testing.assert_allclose(soft[0], [0, 0, 0, 0.7, 0.3, 0, 0, 0], atol=1e-6)
    assert probability.classes == EMOTIONS
    assert len(probability.splits["train"]) == 3  # every image with an emotion vote

    # the vote distributions of the majority set's images: majority's images, the probability loss
    same_images = load_dataset("ferplus", root, label_mode="probability-majority")
    assert {k: len(v) for k, v in same_images.splits.items()} == {"train": 2, "valid": 1, "test": 1}
    assert same_images.splits["train"].labels.tolist() == majority.splits["train"].labels.tolist()
    np.testing.assert_allclose(same_images.splits["train"].soft_labels[0], [0, 1, 0, 0, 0, 0, 0, 0], atol=1e-6)
    assert get_adapter("ferplus").scoring_mode("probability-majority") == "majority"

    # every label mode keeps each image's vote distribution for scoring; only the probability modes train on it
    np.testing.assert_allclose(majority.splits["test"].votes[0], [0, 0, 0, 0.7, 0.3, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(argmax.splits["train"].votes[2], [0.4, 0, 0, 0.1, 0.3, 0.2, 0, 0], atol=1e-6)
    assert majority.splits["test"].soft_labels is None and argmax.splits["train"].soft_labels is None


def test_resize_on_decode(tmp_path):
    root = make_ferplus(tmp_path / "ferplus")
    assert load_dataset("ferplus", root, image_size=32).image_shape == (32, 32, 1)


@pytest.mark.skipif(not FERPLUS_ROOT.exists(), reason="the real FERPlus folder is not beside this checkout")
def test_real_ferplus_counts_and_cache_speed():
    import time

    majority = load_dataset("ferplus", FERPLUS_ROOT, label_mode="majority")
    assert {k: len(v) for k, v in majority.splits.items()} == {"train": 25045, "valid": 3191, "test": 3137}
    started = time.perf_counter()
    again = load_dataset("ferplus", FERPLUS_ROOT, label_mode="majority")
    assert time.perf_counter() - started < 10
    assert np.array_equal(again.splits["test"].labels, majority.splits["test"].labels)


@pytest.mark.slow
@pytest.mark.skipif(not FERPLUS_ROOT.exists(), reason="the real FERPlus folder is not beside this checkout")
def test_real_ferplus_argmax_is_close_to_the_patt_lite_split_sizes():
    argmax = load_dataset("ferplus", FERPLUS_ROOT, label_mode="argmax")
    sizes = [len(argmax.splits[s]) for s in ("train", "valid", "test")]
    for got, paper in zip(sizes, [28558, 3579, 3573]):
        assert abs(got - paper) <= 5


@pytest.mark.hostile("paths")
@pytest.mark.parametrize("row,message", [
    ('/etc/passwd,"(0, 0, 48, 48)",0,9,0,0,0,0,0,0,1,0', "must be a file name inside the split folder"),
    ('../../outside.png,"(0, 0, 48, 48)",0,9,0,0,0,0,0,0,1,0', "must be a file name inside the split folder"),
    pytest.param('fer0000000.png,"(0, 0, 48, 48)",0,1e30,0,0,0,0,0,0,1,0', "vote counts must be whole numbers", marks=pytest.mark.hostile("malformed-input")),
    pytest.param('fer0000000.png,"(0, 0, 48, 48)",0,99999999,0,0,0,0,0,0,1,0', "vote counts must be from 0 to 1000", marks=pytest.mark.hostile("malformed-input")),
    pytest.param('fer0000000.png,"(0, 0, 48, 48)",0,' + "9" * 31 + ',0,0,0,0,0,0,1,0', "vote counts must be whole numbers",
                 marks=pytest.mark.hostile("tracebacks")),  # 10^31: was an OverflowError
    pytest.param('fer0000000.png,"(0, 0, 48, 48)",0,9,0,0,0,0,0,0,1,0\n' * 3, r"listed twice \(first on line 1\)",
                 marks=pytest.mark.hostile("bounded")),  # repeated rows were each decoded again: memory without bound
])
def test_hostile_label_rows_are_one_line_errors(tmp_path, row, message):
    from edge_fer.errors import DataError

    root = make_ferplus(tmp_path / "ferplus")
    (root / "FER2013Train" / "label.csv").write_text(row + "\n")
    with pytest.raises(DataError, match=message):
        load_dataset("ferplus", root)


@pytest.mark.hostile("malformed-input")
def test_a_binary_label_file_is_a_one_line_error(tmp_path):
    from edge_fer.errors import DataError

    root = make_ferplus(tmp_path / "ferplus")
    (root / "FER2013Train" / "label.csv").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DataError, match="not UTF-8 text"):
        load_dataset("ferplus", root)


def test_vote_distributions_train_but_score_on_the_majority_set(tmp_path):
    from edge_fer.config import from_dict
    from edge_fer.data import get_adapter
    from edge_fer.train.config import TrainConfig
    from edge_fer.train.splits import scoring_test_split

    ferplus = get_adapter("ferplus")
    assert ferplus.scoring_mode("probability") == "majority"
    assert ferplus.scoring_mode("argmax") == "argmax" and ferplus.scoring_mode(None) == "majority"
    assert get_adapter("synthetic").scoring_mode(None) == "hard"
    test_rows = [[0, 0, 0, 7, 3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 4, 0, 3, 0, 2, 0]]  # the second has no majority
    root = make_ferplus(tmp_path / "ferplus", {"FER2013Train": [[0, 9, 0, 0, 0, 0, 0, 0, 1, 0]],
                                               "FER2013Valid": [[0, 0, 10, 0, 0, 0, 0, 0, 0, 0]], "FER2013Test": test_rows})
    soft = load_dataset("ferplus", root, label_mode="probability")
    assert len(soft.splits["test"]) == 2
    config = from_dict(TrainConfig, {"data": {"dataset": "ferplus", "root": str(root), "label_mode": "probability"}})
    scored = scoring_test_split(config.data, soft, soft.splits["test"])
    assert scored.labels.tolist() == [3] and scored.soft_labels is None
