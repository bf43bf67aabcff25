"""benchmarks/ablation_table.py: each run's changed settings, accuracies with an interval, and training time."""

import json
import subprocess
import sys

from tests.helpers import REPO


def record(path, seed=0, smoothing=0.0, valid=0.8, test=0.81, seconds=100.0):
    config = {"data": {"dataset": "ferplus"}, "model": {"image_size": 64},
              "train": {"seed": seed, "label_smoothing": smoothing, "peer_timeout_s": 600.0 if seed else None,
                        "scratch": {"epochs": 20}}}
    path.write_text(json.dumps({"config": config, "train_seconds": seconds,
                                "metrics": {"valid": {"accuracy": valid, "count": 3579},
                                            "test": {"accuracy": test, "count": 3137}}}))
    return path


def test_each_run_shows_what_it_changed_from_the_base(tmp_path):
    paths = [record(tmp_path / "base.json"), record(tmp_path / "seed1.json", seed=1, valid=0.79),
             record(tmp_path / "smooth.json", smoothing=0.1, test=0.805, seconds=90.0)]
    out = tmp_path / "ablation"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ablation_table.py"), *map(str, paths),
                             "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [row["changed"] for row in rows] == [{}, {"train.seed": 1}, {"train.label_smoothing": 0.1}]  # not peer_timeout_s
    low, high = rows[2]["test_interval_95"]
    assert low < 0.805 < high and 0.02 < high - low < 0.04  # 3,137 images: about ±1.4 points
    table = out.with_suffix(".md").read_text()
    assert rows[1]["valid_minus_base"] == -0.01
    assert "| `smooth.json` | train.label_smoothing = 0.1 | 0.8000 | 0.787-0.813 | +0.0 | 0.8050 |" in table
    assert "| `seed1.json` | train.seed = 1 | 0.7900 | 0.776-0.803 | -1.0 | 0.8100 |" in table and "| 90 |" in table


def test_a_setting_added_after_the_base_counts_as_changed_only_off_its_default(tmp_path):
    base = record(tmp_path / "base.json")
    later = json.loads(record(tmp_path / "ema.json").read_text())
    later["config"]["train"] |= {"ema": 0.999, "cutmix": 0.0}  # cutmix at its default: the base had it too
    (tmp_path / "ema.json").write_text(json.dumps(later))
    out = tmp_path / "ablation"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ablation_table.py"), str(base),
                             str(tmp_path / "ema.json"), "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.with_suffix(".json").read_text())["rows"][1]["changed"] == {"train.ema": 0.999}


def test_a_file_that_is_not_a_training_record_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ablation_table.py"), str(tmp_path / "x.json"),
                             "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode != 0 and "not a training's model.json" in result.stderr and "Traceback" not in result.stderr
