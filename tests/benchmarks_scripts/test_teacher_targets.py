"""benchmarks/teacher_targets.py on a tiny FERPlus folder and a tiny 8-class model: each teacher's and their mean's
distance from the vote distributions, on training and validation images."""

import importlib.util
import json
import subprocess
import sys

import numpy as np

from tests.benchmarks_scripts.test_fer_peer import tiny_model, to_tflite
from tests.data.test_ferplus import make_ferplus
from tests.helpers import REPO

SCRIPT = REPO / "benchmarks" / "teacher_targets.py"
spec = importlib.util.spec_from_file_location("teacher_targets", SCRIPT)
targets = importlib.util.module_from_spec(spec)
sys.path.insert(0, str(REPO / "benchmarks"))
spec.loader.exec_module(targets)

VOTES = {"FER2013Train": [[0, 9, 0, 0, 0, 0, 0, 0, 1, 0], [8, 0, 0, 0, 0, 0, 0, 0, 2, 0], [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],
                          [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]],
         "FER2013Valid": [[0, 0, 10, 0, 0, 0, 0, 0, 0, 0], [0, 6, 4, 0, 0, 0, 0, 0, 0, 0]],
         "FER2013Test": [[0, 0, 0, 7, 3, 0, 0, 0, 0, 0]]}


def test_the_votes_themselves_are_at_no_distance_and_a_sharper_model_has_less_entropy():
    votes = np.array([[0.6, 0.4, 0.0], [0.1, 0.1, 0.8]])
    same = targets.target_facts(votes, votes)
    assert same["top_class_agreement"] == 1.0 and abs(same["kl_votes_to_model"]) < 1e-4
    sharp = targets.target_facts(np.array([[0.98, 0.01, 0.01], [0.01, 0.01, 0.98]]), votes)
    assert sharp["entropy"] < same["entropy"] and sharp["kl_votes_to_model"] > 0.1
    assert sharp["top_probability"] == 0.98


def test_each_teacher_and_their_mean_are_measured_against_the_votes(tmp_path):
    from edge_fer.data.ferplus import EMOTIONS

    ferplus = make_ferplus(tmp_path / "ferplus", VOTES)
    models = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(to_tflite(tiny_model((32, 32, 3), len(EMOTIONS))))
        path.with_suffix(".tflite.json").write_text(json.dumps({"classes": list(EMOTIONS)}))
        models.append(str(path))
    out = tmp_path / "report" / "targets"
    out.parent.mkdir()
    result = subprocess.run([sys.executable, str(SCRIPT), "--root", str(ferplus), "--model", models[0], "--model",
                             models[1], "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["counts"] == {"train": 4, "valid": 2}
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ["the votes themselves", *models, "mean of 2"]
    # votes for "unknown" and "not a face" are not emotions: the distributions are over the 8 classes
    assert rows["the votes themselves"]["train"]["top_probability"] == round((1.0 + 1.0 + 0.4 + 0.5) / 4, 4)
    for name in (*models, "mean of 2"):
        for split in ("train", "valid"):
            facts = rows[name][split]
            assert 0 <= facts["top_class_agreement"] <= 1 and facts["kl_votes_to_model"] >= 0
            assert 1 / len(EMOTIONS) <= facts["top_probability"] <= 1
    assert rows["the votes themselves"]["train"]["class_mass"][:2] == [round((1 + 0.4 + 0.5) / 4, 4), round((1 + 0.5) / 4, 4)]
    for name in (*models, "mean of 2"):
        assert abs(sum(rows[name]["train"]["class_mass"]) - 1) < 1e-3
    assert out.with_suffix(".md").read_text().count("\n| ") == 2 * (1 + 4)  # two tables: a header, four sources


def test_a_model_of_other_classes_is_refused_before_scoring(tmp_path):
    ferplus = make_ferplus(tmp_path / "ferplus", VOTES)
    path = tmp_path / "seven.tflite"
    path.write_bytes(to_tflite(tiny_model((32, 32, 3), 7)))
    path.with_suffix(".tflite.json").write_text(json.dumps({"classes": ["a", "b", "c", "d", "e", "f", "g"]}))
    result = subprocess.run([sys.executable, str(SCRIPT), "--root", str(ferplus), "--model", str(path), "--out",
                             str(tmp_path / "t")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "not the dataset's" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("t.*"))
