import importlib.util
import json
import sys

import pytest

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("int8_speedup", REPO / "benchmarks" / "int8_speedup.py")
speedup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(speedup)


def test_rounds_give_one_speedup_each_and_a_summary_per_thread_count(exported, tmp_path, monkeypatch, capsys):
    _, results = exported
    fp32, int8 = results["tflite-fp32"]["path"], results["tflite-int8"]["path"]
    store = tmp_path / "results.sqlite"
    out, table = tmp_path / "speedup.json", tmp_path / "speedup.md"
    monkeypatch.setattr(sys, "argv", ["int8_speedup.py", str(fp32), str(int8), "--threads", "1", "2", "--rounds", "2",
                                      "--min-duration", "0.05", "--bar", "0.5", "--store", str(store),
                                      "--out", str(out), "--markdown", str(table)])
    assert speedup.main() == 0
    result = json.loads(out.read_text())
    assert [(row["threads"], row["round"]) for row in result["rounds"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for row in result["rounds"]:
        assert row["speedup"] == pytest.approx(row["fp32_p50_ms"] / row["int8_p50_ms"])
    assert [row["threads"] for row in result["summary"]] == [1, 2]
    from edge_fer.bench import store as results_store
    assert len(results_store.fetch(store)) == 8  # two files per round, every round stored
    assert "| 2 | 2 |" in table.read_text() and "Produced by `python benchmarks/int8_speedup.py" in table.read_text()
    assert "median x" in capsys.readouterr().out


def test_summary_counts_rounds_at_the_bar():
    rounds = [{"threads": 1, "speedup": value} for value in (2.4, 2.5, 2.6)]
    [row] = speedup.summarize(rounds, bar=2.5)
    assert row["median_speedup"] == 2.5 and row["min_speedup"] == 2.4 and row["rounds_at_bar"] == 2


def test_missing_file_is_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["int8_speedup.py", str(tmp_path / "a.tflite"), str(tmp_path / "b.tflite")])
    assert speedup.main() == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
