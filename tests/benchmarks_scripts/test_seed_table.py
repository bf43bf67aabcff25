"""benchmarks/seed_table.py: the mean and spread over seeds of one training, from the runs' own records."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO


def run_folder(root, seed, valid, keras, int8):
    folder = root / f"seed{seed}"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"config": {"train": {"seed": seed}}, "train_seconds": 100.0 + seed,
                                                   "metrics": {"valid": {"accuracy": valid, "count": 3579}}}))
    scored = {name: {"accuracy": value, "count": 3137} for name, value in (("keras", keras), ("tflite-int8", int8))}
    (folder / "evaluate.json").write_text(json.dumps({"majority": scored, "argmax": scored}))
    return folder


def test_the_table_gives_each_seed_and_the_mean_and_sample_spread(tmp_path):
    folders = [run_folder(tmp_path, 0, 0.80, 0.84, 0.845), run_folder(tmp_path, 1, 0.82, 0.83, 0.835),
               run_folder(tmp_path, 2, 0.81, 0.85, 0.840)]
    out = tmp_path / "seeds"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "seed_table.py"), *map(str, folders), "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.with_suffix(".json").read_text())["summary"]
    assert summary["keras"]["mean"] == pytest.approx(0.84) and summary["keras"]["std"] == pytest.approx(0.01)
    assert summary["tflite-int8"]["mean"] == pytest.approx(0.84) and summary["tflite-int8"]["std"] == pytest.approx(0.005)
    assert summary["valid"]["mean"] == pytest.approx(0.81)
    table = out.with_suffix(".md").read_text()
    assert "| mean |  | 0.8100 | 0.8400 | 0.8400 |  |" in table and "| 1 | " in table
    assert "tflite-int8-qat" not in table  # no run has it: no column


def test_the_same_seed_twice_is_refused(tmp_path):
    folders = [run_folder(tmp_path / "a", 0, 0.8, 0.8, 0.8) if (tmp_path / "a").mkdir() is None else None,
               run_folder(tmp_path / "b", 0, 0.8, 0.8, 0.8) if (tmp_path / "b").mkdir() is None else None]
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "seed_table.py"), *map(str, folders),
                             "--out", str(tmp_path / "seeds")], capture_output=True, text=True)
    assert result.returncode != 0 and "same seed" in result.stderr and not (tmp_path / "seeds.json").exists()


def test_qat_records_are_told_apart_by_their_qat_seed_and_time(tmp_path):
    folders = [run_folder(tmp_path, seed, 0.81, 0.84, 0.84 + seed / 1000) for seed in (0, 1)]
    for qat_seed, folder in zip((5, 6), folders):  # one float model (train seed 0 in both), QAT seeds 5 and 6
        record = json.loads((folder / "model.json").read_text())
        record.update(config={"train": {"seed": 0}}, qat_config={"seed": qat_seed}, qat_seconds=160.0 + qat_seed)
        (folder / "model.json").write_text(json.dumps(record))
    out = tmp_path / "seeds"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "seed_table.py"), *map(str, folders),
                             "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    assert [(run["seed"], run["train_seconds"]) for run in runs] == [(5, 165.0), (6, 166.0)]
