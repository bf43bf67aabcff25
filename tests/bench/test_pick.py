"""`edge-fer pick`: the most accurate artifact under a latency budget, from a results store."""

import json

import pytest

from edge_fer.bench import store
from edge_fer.cli import main


def row(name, accuracy, p50, status="passed", dataset="ferplus", target="host-cpu"):
    return {"run_id": "r", "created": "2026-11-28T00:00:00", "target": target, "artifact": f"a/model-{name}.tflite",
            "artifact_sha256": name, "format": name, "status": status, "p50_ms": p50, "accuracy": accuracy,
            "dataset": dataset, "size_bytes": 1000}


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.sqlite"
    store.insert(path, [row("tflite-fp32", 0.81, 0.86), row("tflite-int8", 0.817, 0.56), row("tflite-int8-qat", 0.822, 0.44),
                        row("onnx-fp32", 0.90, 1.19, status="failed"), row("onnx-int8-qdq", 0.822, 3.27)])
    return path


@pytest.mark.parametrize("budget,expected", [(0.5, "tflite-int8-qat"), (1.0, "tflite-int8-qat"), (0.44, "tflite-int8-qat"),
                                             (10, "tflite-int8-qat")])
def test_the_most_accurate_within_the_budget_ties_to_the_faster(results, capsys, budget, expected):
    assert main(["pick", "--store", str(results), "--target", "host-cpu", "--max-p50-ms", str(budget), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pick"]["format"] == expected  # onnx-int8-qdq ties at 0.822, slower


def test_a_failed_row_is_never_picked_and_formats_narrow_the_choice(results, capsys):
    assert main(["pick", "--store", str(results), "--target", "host-cpu", "--max-p50-ms", "2", "--format",
                 "onnx-fp32,tflite-fp32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pick"]["format"] == "tflite-fp32"


def test_nothing_fits_is_one_line_and_exit_2(results, capsys):
    assert main(["pick", "--store", str(results), "--target", "host-cpu", "--max-p50-ms", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nothing fits") and "the fastest is tflite-int8-qat at 0.440 ms" in err and err.count("\n") == 1


@pytest.mark.hostile("malformed-input")
@pytest.mark.parametrize("argv,message", [
    (["--target", "jetson-orin-nano", "--max-p50-ms", "1"], "no rows for target 'jetson-orin-nano' (it has: host-cpu)"),
    (["--target", "host-cpu", "--max-p50-ms", "nan"], "--max-p50-ms must be a positive number"),
    (["--target", "host-cpu", "--max-p50-ms", "-1"], "--max-p50-ms must be a positive number"),
    (["--target", "host-cpu", "--max-p50-ms", "1", "--format", "tflite-fp64"], "unknown export format 'tflite-fp64'"),
])
def test_bad_questions_are_one_line_errors(results, capsys, argv, message):
    assert main(["pick", "--store", str(results), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_a_store_mixing_datasets_needs_one_named(results, capsys, tmp_path):
    store.insert(results, [row("tflite-fp16", 0.99, 0.3, dataset="synthetic")])
    assert main(["pick", "--store", str(results), "--target", "host-cpu", "--max-p50-ms", "1"]) == 2
    assert "several datasets (ferplus, synthetic); pass --dataset NAME" in capsys.readouterr().err
    assert main(["pick", "--store", str(results), "--target", "host-cpu", "--max-p50-ms", "1", "--dataset", "ferplus", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pick"]["format"] == "tflite-int8-qat"
    assert main(["pick", "--store", str(tmp_path / "none.sqlite"), "--target", "host-cpu", "--max-p50-ms", "1"]) == 2
    assert not (tmp_path / "none.sqlite").exists()


def test_without_a_store_the_newest_run_store_is_used_and_named(tmp_path, capsys, monkeypatch):
    import os

    monkeypatch.chdir(tmp_path)
    for name, accuracy, age in (("older", 0.70, 100), ("newer", 0.80, 0)):
        path = tmp_path / "runs" / name / "results.sqlite"
        path.parent.mkdir(parents=True)
        store.insert(path, [row("tflite-int8", accuracy, 0.3)])
        os.utime(path, (path.stat().st_mtime - age, path.stat().st_mtime - age))
    assert main(["pick", "--target", "host-cpu", "--max-p50-ms", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["pick"]["test_accuracy"] == 0.80
    assert "store: runs/newer/results.sqlite (the newest results store here" in captured.err


def scored(name, test, valid, p50, rounds=None):
    """A row scored on test (200 images) and, where `valid` is given, on validation (300 images)."""
    metrics = {"scores": {"accuracy": test, "count": 200},
               "single_stream": {"round_p50_ms": rounds} if rounds else {}}
    if valid is not None:
        metrics["scores_valid"] = {"accuracy": valid, "count": 300}
    return {**row(name, test, p50), "metrics": metrics}


def test_the_choice_is_made_on_validation_and_shown_with_intervals(tmp_path, capsys):
    path = tmp_path / "results.sqlite"
    store.insert(path, [scored("tflite-int8", 0.83, 0.80, 0.3), scored("tflite-int8-qat", 0.82, 0.85, 0.4, [0.39, 0.44, 0.41])])
    assert main(["pick", "--store", str(path), "--target", "host-cpu", "--max-p50-ms", "1", "--json"]) == 0
    chosen = json.loads(capsys.readouterr().out)["pick"]
    assert (chosen["format"], chosen["chosen_on"]) == ("tflite-int8-qat", "valid")  # not the higher test score
    assert chosen["valid_accuracy"] == 0.85 and chosen["test_accuracy"] == 0.82 and chosen["round_p50_ms"] == [0.39, 0.44]
    low, high = chosen["test_interval_95"]
    assert low < 0.82 < high and 0.05 < high - low < 0.12  # 200 images: about ±5 points
    assert main(["pick", "--store", str(path), "--target", "host-cpu", "--max-p50-ms", "1"]) == 0
    assert "TEST" not in capsys.readouterr().out


def test_rows_without_validation_scores_are_chosen_on_test_and_say_so(tmp_path, capsys):
    path = tmp_path / "results.sqlite"
    store.insert(path, [scored("tflite-int8", 0.83, None, 0.3), scored("tflite-int8-qat", 0.82, 0.85, 0.4)])
    assert main(["pick", "--store", str(path), "--target", "host-cpu", "--max-p50-ms", "1", "--json"]) == 0
    chosen = json.loads(capsys.readouterr().out)["pick"]
    assert (chosen["format"], chosen["chosen_on"]) == ("tflite-int8", "test")
    assert main(["pick", "--store", str(path), "--target", "host-cpu", "--max-p50-ms", "1"]) == 0
    assert "chosen on TEST accuracy" in capsys.readouterr().out


def with_bits(row, valid_correct):
    """A row whose validation record says which of the images it got right."""
    import numpy as np

    from edge_fer.evaluate import pack_correct

    correct = np.asarray(valid_correct, bool)
    row["metrics"]["scores_valid"] = {"accuracy": float(correct.mean()), "count": len(correct),
                                      "correct_bits": pack_correct(correct)}
    return row


@pytest.mark.parametrize("margin,verdict", [(40, "better (p < 0.05)"), (3, "within noise")])
def test_the_choice_is_tested_against_the_runner_up_on_the_same_images(tmp_path, capsys, margin, verdict):
    """The runner-up gets the same 300 images right except `margin` more that only the choice gets: 40 of 300 is
    more than chance, 3 is not, and the line says which (with McNemar's counts and p)."""
    base = [True] * 200 + [False] * 100
    better = [True] * (200 + margin) + [False] * (100 - margin)
    path = tmp_path / "results.sqlite"
    store.insert(path, [with_bits(scored("tflite-int8-qat", 0.8, 0.0, 0.4), better),
                        with_bits(scored("tflite-int8", 0.8, 0.0, 0.3), base)])
    assert main(["pick", "--store", str(path), "--target", "host-cpu", "--max-p50-ms", "1", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)["runner_up"]
    assert second["format"] == "tflite-int8" and second["mcnemar"]["only_a"] == margin
    assert second["mcnemar"]["only_b"] == 0 and second["verdict"] == verdict
    assert main(["pick", "--store", str(path), "--target", "host-cpu", "--max-p50-ms", "1"]) == 0
    line = capsys.readouterr().out
    assert f"{margin} images only the choice got right, 0 only the runner-up" in line and verdict in line


def test_mcnemar_counts_only_the_images_the_two_disagree_on():
    import numpy as np

    from edge_fer.evaluate import mcnemar, pack_correct, unpack_correct

    a = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    b = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 1], bool)
    test = mcnemar(a, b)
    assert (test["only_a"], test["only_b"]) == (2, 1) and test["p"] == pytest.approx(1.0)  # binomial(2 of 3): 1.0
    assert mcnemar(np.ones(30, bool), np.r_[np.ones(10), np.zeros(20)].astype(bool))["p"] < 1e-5
    assert (unpack_correct(pack_correct(a), 10) == a).all()
    with pytest.raises(ValueError):
        unpack_correct(pack_correct(np.ones(16, bool)), 10)  # set bits past the count: not this image set
