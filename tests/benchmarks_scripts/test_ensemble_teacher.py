"""benchmarks/ensemble_teacher.py on the shared tiny model and its int8 file: each alone, their mean, the greedy
subset; a model of other classes is refused before anything is scored."""

import json
import shutil
import subprocess
import sys

from tests.helpers import REPO

SCRIPT = str(REPO / "benchmarks" / "ensemble_teacher.py")


def ensemble(*models, out):
    return subprocess.run([sys.executable, SCRIPT, "--dataset", "synthetic", "--root", "",
                           *[arg for m in models for arg in ("--model", str(m))], "--out", str(out)],
                          capture_output=True, text=True, timeout=600)


def test_each_model_their_mean_and_the_greedy_subset_are_scored(exported, tmp_path):
    root, _ = exported
    float_model, int8_file = root / "float", root / "artifacts" / "model-tflite-int8.tflite"
    result = ensemble(float_model, int8_file, float_model / "model.keras", out=tmp_path / "ens")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads((tmp_path / "ens.json").read_text())["rows"]}
    assert list(rows) == [str(float_model), str(int8_file), str(float_model / "model.keras"), "mean of all",
                          "greedy on valid"]
    for split in ("valid", "test"):  # the folder and its model.keras are one model
        assert rows[str(float_model)][split] == rows[str(float_model / "model.keras")][split]
        low, high = rows["mean of all"][f"{split}_interval_95"]
        assert low <= rows["mean of all"][split] <= high
    greedy = rows["greedy on valid"]
    assert greedy["members"] and greedy["valid"] >= max(rows[m]["valid"] for m in greedy["members"])
    assert "--dataset synthetic" in (tmp_path / "ens.md").read_text()


def test_a_model_of_other_classes_is_refused_before_scoring(exported, tmp_path):
    root, _ = exported
    other = tmp_path / "other"
    shutil.copytree(root / "float", other)
    record = json.loads((other / "model.json").read_text())
    record["classes"] = record["classes"][::-1]  # same count, other order: its columns mean other classes
    (other / "model.json").write_text(json.dumps(record))
    result = ensemble(root / "float", other, out=tmp_path / "ens")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and str(other) in last and "not the dataset's" in last
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("ens*"))


def test_members_of_one_file_name_are_named_by_their_paths(exported, tmp_path):
    root, _ = exported
    copies = [tmp_path / name / "model-tflite-int8.tflite" for name in ("a", "b")]
    for copy in copies:
        copy.parent.mkdir()
        for suffix in ("", ".json"):
            shutil.copy(str(root / "artifacts" / "model-tflite-int8.tflite") + suffix, str(copy) + suffix)
    result = ensemble(*copies, out=tmp_path / "ens")
    assert result.returncode == 0, result.stderr[-2000:]
    mean_row = next(line for line in (tmp_path / "ens.md").read_text().splitlines() if line.startswith("| mean of all"))
    assert f"mean of all: {copies[0]}, {copies[1]} |" in mean_row
