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
    pngs = sorted((out / "report_files").glob("*.png"))
    confusions = [png for png in pngs if png.name.startswith("confusion-")]
    assert (out / "report_files" / "accuracy-latency-host-cpu.png") in pngs
    assert 1 <= len(confusions) <= len(CPU_ARTIFACTS)  # the Pareto-front artifacts only
    assert all(f"report_files/{png.name}" in markdown for png in confusions)
    for png in pngs:
        with Image.open(png) as image:
            image.load()
            assert image.size[0] > 300


def test_each_artifact_has_a_status_and_the_run_goes_on(exported, tmp_path, capsys):
    _, results = exported
    broken = tmp_path / "model-tflite-fp32.tflite"
    broken.write_bytes(b"not a flatbuffer")
    code = main(["bench", str(broken), results["onnx-fp32"]["path"], "--target", "host-cpu",
                 "--store", str(tmp_path / "s.sqlite"), *QUICK, "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [row["status"] for row in rows] == ["failed", "passed"] and rows[0]["reason"]


def test_rounds_pool_every_rounds_latencies_and_score_once(exported, tmp_path, capsys):
    """--rounds 3: each artifact is timed in three rounds interleaved with the others, its row holds the pooled
    statistics and each round's p50; it is scored (and its Offline run) once. A broken artifact fails in the
    first round and is not tried again."""
    _, results = exported
    broken = tmp_path / "model-tflite-fp32.tflite"
    broken.write_bytes(b"not a flatbuffer")
    dataset = ["--dataset", "synthetic", "-o", "train_count=7", "-o", "valid_count=7", "-o", "test_count=70"]
    code = main(["bench", results["tflite-int8"]["path"], str(broken), results["onnx-fp32"]["path"], "--rounds", "3",
                 "--store", str(tmp_path / "s.sqlite"), *QUICK, *dataset, "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1 and [row["status"] for row in rows] == ["passed", "failed", "passed"]
    assert not rows[1]["reason"].startswith("round")
    for row in (rows[0], rows[2]):
        timed = row["metrics"]["single_stream"]
        assert timed["rounds"] == 3 and len(timed["round_p50_ms"]) == 3 and "latencies_ms" not in timed
        assert timed["count"] >= 20 and row["p50_ms"] == timed["p50_ms"]
        assert row["accuracy"] is not None and row["images_per_s"] > 0 and len(row["metrics"]["scores"]["confusion"]) > 1


@pytest.mark.hostile("exit-codes")
def test_a_missing_artifact_is_a_one_line_error_before_measuring(exported, tmp_path, capsys):
    _, results = exported
    code = main(["bench", str(tmp_path / "missing.onnx"), results["onnx-fp32"]["path"], "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "artifact does not exist" in err and "missing.onnx" in err
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.hostile("exit-codes")
def test_target_refuses_formats_it_does_not_run(exported, tmp_path, capsys):
    _, results = exported
    code = main(["bench", results["tflite-int8"]["path"], "--target", "rtx-4090", "--store", str(tmp_path / "s.sqlite"), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1 and rows[0]["status"] == "failed" and "does not run tflite-int8" in rows[0]["reason"]


def test_a_missing_trtexec_fails_its_rows_and_the_run_goes_on(exported, tmp_path):
    """JetPack puts trtexec in /usr/src/tensorrt/bin; where it is not found either, the engine's row is failed
    with the reason and the other artifacts are still measured."""
    _, results = exported
    target = tmp_path / "gpu-box.toml"
    target.write_text('kind = "gpu"\naccess = "local"\nformats = ["tensorrt-fp16", "onnx-fp32"]\n'
                      '[device]\ntensorrt = "8.5.2"\n'
                      f'[tensorrt]\nprecisions = ["fp16"]\nuse_trtexec = true\ntrtexec = "{tmp_path / "no-trtexec"}"\n')
    engine = tmp_path / "model-tensorrt-fp16.engine"
    engine.write_bytes(b"not really an engine")
    (tmp_path / "model-tensorrt-fp16.engine.json").write_text(json.dumps({"format": "tensorrt-fp16", "image_size": 64}))
    database = tmp_path / "results.sqlite"
    code = main(["bench", str(engine), results["onnx-fp32"]["path"], "--target", str(target), "--store", str(database), *QUICK])
    rows = {row["format"]: row for row in store.fetch(database)}
    assert code == 1
    assert rows["tensorrt-fp16"]["status"] == "failed" and "trtexec not found" in rows["tensorrt-fp16"]["reason"]
    assert rows["onnx-fp32"]["status"] == "passed" and rows["onnx-fp32"]["p50_ms"] > 0


@pytest.mark.hostile("malformed-input")
@pytest.mark.parametrize("kind", ["directory", "corrupt", "foreign"])
def test_a_bad_store_fails_before_any_measuring(tmp_path, capsys, kind):
    import sqlite3

    path = tmp_path / "results.sqlite"
    if kind == "directory":
        path.mkdir()
    elif kind == "corrupt":
        path.write_bytes(b"this is not a database" * 100)
    else:
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE measurements (id INTEGER PRIMARY KEY, colour TEXT)")
    artifact = tmp_path / "model-tflite-fp32.tflite"
    artifact.write_bytes(b"never measured")
    assert main(["bench", str(artifact), "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results store" in err and "Traceback" not in err
