import json

import pytest
from PIL import Image

from edge_fer.bench import store
from edge_fer.cli import main

CPU_ARTIFACTS = ["tflite-fp32", "tflite-int8", "tflite-int8-qat", "onnx-fp32", "onnx-int8-qdq"]
QUICK = ["--min-queries", "20", "--min-duration", "0.3", "--warmup", "3", "--offline-batch", "8"]


def artifact_paths(results):
    return [results[name]["path"] for name in CPU_ARTIFACTS]


@pytest.fixture(scope="module")
def two_runs(exported, tmp_path_factory):
    _, results = exported
    folder = tmp_path_factory.mktemp("bench")
    database = folder / "results.sqlite"
    dataset = ["--dataset", "synthetic", "-o", "train_count=7", "-o", "valid_count=7", "-o", "test_count=70"]
    first = main(["bench", *artifact_paths(results), "--target", "host-cpu", "--store", str(database), *QUICK, *dataset, "--json"])
    second = main(["bench", *artifact_paths(results)[:2], "--target", "host-cpu", "--store", str(database), *QUICK])
    return folder, database, first, second


def test_bench_prints_rows_and_a_second_run_adds_rows(two_runs):
    _, database, first, second = two_runs
    assert first == 0 and second == 0
    rows = store.fetch(database)
    assert len(rows) == len(CPU_ARTIFACTS) + 2
    assert len({row["run_id"] for row in rows}) == 2
    scored = [row for row in rows if row["accuracy"] is not None]
    assert len(scored) == len(CPU_ARTIFACTS) and all(row["synthetic"] == 1 for row in scored)
    for row in rows:
        assert row["status"] == "passed" and row["p50_ms"] > 0 and row["p90_ms"] >= row["p50_ms"]
        assert row["artifact_sha256"] and row["size_bytes"] > 0 and row["versions"]["host"]["numpy"]
        assert row["metrics"]["load_s"] > 0 and row["metrics"]["peak_rss_mb"] > 10
        assert row["metrics"]["single_stream"]["count"] >= 20
    assert all(row["images_per_s"] > 0 for row in rows)


def test_report_renders_both_runs_and_the_pngs_open(two_runs, capsys):
    folder, database, _, _ = two_runs
    out = folder / "report"
    capsys.readouterr()
    assert main(["report", "--store", str(database), "--out", str(out)]) == 0
    terminal = capsys.readouterr().out
    assert "host-cpu" in terminal and "tflite-int8-qat" in terminal and "SYNTHETIC" in terminal
    markdown = (out / "report.md").read_text()
    assert markdown.count("| host-cpu |") == 2  # both runs listed
    assert "| tflite-int8 | int8 |" in markdown and "accuracy-latency-host-cpu.png" in markdown
    assert "<table>" in (out / "report.html").read_text()
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 1 + len(CPU_ARTIFACTS)
    for png in pngs:
        with Image.open(png) as image:
            image.load()
            assert image.size[0] > 300


def test_each_artifact_has_a_status_and_the_run_goes_on(exported, tmp_path, capsys):
    _, results = exported
    broken = tmp_path / "model-tflite-fp32.tflite"
    broken.write_bytes(b"not a flatbuffer")
    code = main(["bench", str(broken), str(tmp_path / "missing.onnx"), results["onnx-fp32"]["path"], "--target", "host-cpu",
                 "--store", str(tmp_path / "s.sqlite"), *QUICK, "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [row["status"] for row in rows] == ["failed", "failed", "passed"]
    assert rows[1]["reason"] == "file does not exist" and rows[0]["reason"]


def test_target_refuses_formats_it_does_not_run(exported, tmp_path, capsys):
    _, results = exported
    code = main(["bench", results["tflite-int8"]["path"], "--target", "rtx-4090", "--store", str(tmp_path / "s.sqlite"), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1 and rows[0]["status"] == "failed" and "does not run tflite-int8" in rows[0]["reason"]
