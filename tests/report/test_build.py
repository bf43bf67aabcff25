import numpy as np

from edge_fer.bench.store import latest_per_artifact


def row(sha, accuracy=None, p50=1.0, path="runs/x/model-tflite-fp32.tflite"):
    return {"target": "host-cpu", "artifact": path, "artifact_sha256": sha, "format": "tflite-fp32", "accuracy": accuracy,
            "macro_f1": accuracy, "dataset": "ferplus" if accuracy else None, "synthetic": False, "p50_ms": p50, "metrics": {}}


def test_a_file_exported_again_replaces_the_older_one_and_scores_stay_with_the_contents():
    older, newer = row("aaa", accuracy=0.8, p50=2.0), row("bbb", p50=1.0)
    shown = latest_per_artifact([older, newer])["host-cpu"]
    assert len(shown) == 1 and shown[0]["p50_ms"] == 1.0
    assert shown[0]["accuracy"] is None  # another file: the old file's score does not carry over

    shown = latest_per_artifact([row("aaa", accuracy=0.8), row("aaa", p50=0.5)])["host-cpu"]
    assert shown[0]["accuracy"] == 0.8 and shown[0]["p50_ms"] == 0.5  # same contents: latency-only row keeps the score

    other_path = row("ccc", accuracy=0.7, path="runs/y/model-tflite-fp32.tflite")
    assert len(latest_per_artifact([older, other_path])["host-cpu"]) == 2


import re

import pytest

from edge_fer.bench import store
from edge_fer.report import LEDGER, ReportLedger, build_report, pareto_front


def stored_row(fmt, precision, accuracy, p50, synthetic=True, reason=None):
    return {"run_id": "r1", "created": "2026-11-28T00:00:00+00:00", "target": "host-cpu", "artifact": f"runs/x/model-{fmt}",
            "artifact_sha256": fmt, "format": fmt, "precision": precision, "status": "failed" if reason else "passed",
            "reason": reason, "size_bytes": 1_200_000, "p50_ms": p50, "p90_ms": p50 and p50 * 1.2, "accuracy": accuracy,
            "macro_f1": accuracy, "dataset": "synthetic", "synthetic": int(synthetic),
            "versions": {"host": {"python": "3.11.7", "tensorflow": "2.20.0", "onnxruntime": "1.22.0"}},
            "metrics": {}}


def test_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    points = [(1.0, 0.80), (0.5, 0.70), (2.0, 0.85), (1.5, 0.79), (0.5, 0.60)]
    assert pareto_front(points) == [1, 0, 2]


def test_the_plotted_front_is_chosen_on_validation_where_every_file_has_it():
    from edge_fer.report.plots import chosen_front

    # b leads on test, a on validation: pick would choose a, so the ringed front is a's
    a = {"x": 1.0, "y": 0.80, "valid": 0.86, "kind": "artifact"}
    b = {"x": 1.2, "y": 0.82, "valid": 0.85, "kind": "artifact"}
    peer = {"x": 0.5, "y": 0.70, "kind": "peer"}
    assert chosen_front([a, b, peer]) == ([0], "validation")
    assert chosen_front([a, {**b, "valid": None}, peer]) == ([2, 0, 1], "test")


@pytest.fixture
def report(tmp_path):
    results = tmp_path / "results.sqlite"
    store.insert(results, [stored_row("tflite-fp32", "fp32", 0.90, 0.51), stored_row("tflite-fp16", "fp16", 0.90, 0.52),
                           stored_row("onnx-fp32", "fp32", 0.90, 0.53), stored_row("tflite-int8", "int8", 0.91, 0.30),
                           stored_row("onnx-int8-qdq", "int8", None, None, reason="runtime | missing")])
    extras = [("Training", "- settings: batch_size 32; scratch.epochs 20\n\n| model | accuracy |\n|---|---|\n| keras | 0.9 |"),
              ("peer", "<script>alert(1)</script> and `code`")]
    return build_report(results, tmp_path / "out", commands=["edge-fer run"], extras=extras), tmp_path / "out"


def test_the_html_report_renders_every_table_and_escapes_included_html(report):
    result, out = report
    page = (out / "report.html").read_text()
    assert page.count("<table>") == 5  # training extra, host-cpu accuracy and speed, software versions, runs in the store
    assert not re.search(r"<pre>[^<]*\|---", page), "a Markdown table left inside <pre>"
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<code>code</code>" in page and "`code`" not in page
    assert "<td>tensorflow</td><td>2.20.0</td>" in page.replace("\n", "")
    assert "runtime \\| missing" not in page and "runtime | missing" in page
    assert 'src="report_files/accuracy-latency-host-cpu.png"' in page
    assert (out / "report_files" / "accuracy-latency-host-cpu.png").stat().st_size > 10_000
    markdown = (out / "report.md").read_text()
    assert "**SYNTHETIC**" in markdown and "\n\n\n" not in markdown and result["html"].endswith("report.html")


def test_a_report_is_rewritten_whole(report, tmp_path):
    _, out = report
    assert not list(out.glob(".partial-*"))


def test_figures_an_earlier_report_wrote_are_deleted_when_no_longer_shown_and_nothing_else_is(tmp_path):
    folder = tmp_path / "FRONT_files"
    folder.mkdir()
    for name in ("shown.png", "stale.png", "users.png", "changed.png", "notes.txt"):
        (folder / name).write_text("x")
    ledger = ReportLedger(tmp_path)
    for name in ("shown.png", "stale.png", "changed.png"):
        ledger.record(folder / name)
    (folder / "changed.png").write_text("the user's edit")
    assert ledger.prune(folder, "![plot](FRONT_files/shown.png)") == ["stale.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["changed.png", "notes.txt", "shown.png", "users.png"]


@pytest.mark.hostile("data lost or wrong")
def test_a_report_never_overwrites_or_deletes_the_users_files(report, tmp_path, capsys):
    from edge_fer.cli import main

    result, _ = report
    database = result["store"]
    mine = tmp_path / "mine"
    (mine / "report_files").mkdir(parents=True)
    (mine / "report.md").write_text("my own notes")
    (mine / "report_files" / "holiday.png").write_bytes(b"\x89PNG my photo")
    assert main(["report", "--store", str(database), "--out", str(mine)]) == 2
    assert "report.md exists and was not written by an edge-fer report" in capsys.readouterr().err
    assert (mine / "report.md").read_text() == "my own notes" and (mine / "report_files" / "holiday.png").is_file()
    (mine / "report.md").rename(mine / "notes.md")
    assert main(["report", "--store", str(database), "--out", str(mine)]) == 0  # next to them, not over them
    assert (mine / "report_files" / "holiday.png").read_bytes() == b"\x89PNG my photo" and (mine / "notes.md").is_file()
    assert (mine / LEDGER).is_file() and main(["report", "--store", str(database), "--out", str(mine)]) == 0  # its own: rewritten


def test_the_table_shows_the_spread_of_a_rows_interleaved_rounds():
    from edge_fer.report import COLUMNS, table_rows

    timed = {**row("aaa", accuracy=0.8, p50=0.5), "status": "passed",
             "metrics": {"single_stream": {"round_p50_ms": [0.52, 0.4412, 0.61]}}}
    once = {**row("bbb", accuracy=0.8), "status": "passed"}
    spread, single = (line[COLUMNS.index("round p50s ms")] for line in table_rows([timed, once], "host-cpu"))
    assert spread == "0.441-0.610" and single is None


def test_energy_and_timed_by_columns_show_only_where_a_row_has_them():
    from edge_fer.report import COLUMNS, table_rows, visible

    plain = {**row("aaa", accuracy=0.8), "status": "passed"}
    columns, _ = visible(COLUMNS, table_rows([plain], "host-cpu"))
    assert "mJ/image" not in columns and "timed by" not in columns
    board = {**row("bbb", p50=7.2), "status": "passed", "format": "tensorrt-fp16", "precision": "fp16",
             "metrics": {"timed_by": "trtexec", "power": {"mean_power_w": 1.8, "energy_mj_per_image": 13.8145}}}
    failed = {**row("ccc"), "status": "failed", "reason": "no trtexec on the board"}
    columns, cells = visible(COLUMNS, table_rows([plain, board, failed], "host-cpu"))
    assert [cells[1][columns.index(name)] for name in ("mJ/image", "timed by")] == [13.815, "trtexec"]
    assert cells[0][columns.index("timed by")] is None and cells[2][-1] == "failed: no trtexec on the board"


def test_a_gpu_engine_on_a_jetson_with_dlas_is_not_held_to_the_module_tops():
    from edge_fer.report import roofline_ms

    engine = {"precision": "int8", "size_bytes": 2_000_000, "metrics": {"macs": 86_196_736, "engine": {"dla_core": None}}}
    assert roofline_ms(engine, "jetson-xavier-nx") is None  # 21 TOPS is GPU + 2 DLA: no GPU-only figure published
    assert roofline_ms(engine, "jetson-orin-nano") is not None  # no DLA: the module figure is the GPU's
    on_dla = {**engine, "metrics": {"macs": 86_196_736, "engine": {"dla_core": 0}}}
    assert roofline_ms(on_dla, "jetson-orin-nano") is None


@pytest.mark.hostile("tracebacks")
def test_names_that_look_like_tex_are_drawn_as_plain_text(tmp_path):
    results = tmp_path / "results.sqlite"
    rows = [{**stored_row("tflite-fp32", "fp32", 0.90, 0.51), "artifact": "runs/$x^{$/export/model-tflite-fp32.tflite"},
            {**stored_row("tflite-int8", "int8", 0.91, 0.30), "artifact": "runs/plain/export/model-tflite-int8.tflite"}]
    store.insert(results, rows)
    report = build_report(results, tmp_path / "out")
    assert report["sections"][0]["plot"] and "$x^{$:tflite-fp32" in (tmp_path / "out" / "report.md").read_text()


def test_the_report_tests_the_leaders_margin_on_the_same_images(tmp_path):
    """The leader (most accurate on validation) against the others, McNemar on each split: 30 more right of 200
    is more than chance, 2 more is noise; without per-image records there is no such table."""
    import numpy as np

    from edge_fer.evaluate import pack_correct

    def scored(fmt, extra_right, p50):
        row = stored_row(fmt, "int8", 0.0, p50)
        for key in ("scores", "scores_valid"):
            correct = np.arange(200) < 120 + extra_right
            right = int(correct.sum())
            row["metrics"][key] = {"accuracy": right / 200, "count": 200, "correct_bits": pack_correct(correct),
                                   "classes": ["a", "b"], "confusion": [[right, 200 - right], [0, 0]]}
        row["accuracy"] = row["metrics"]["scores"]["accuracy"]
        return row

    results = tmp_path / "results.sqlite"
    store.insert(results, [scored("tflite-int8", 30, 0.3), scored("tflite-int8-qat", 28, 0.4), scored("tflite-fp32", 0, 0.5)])
    markdown = (tmp_path / "out" / "report.md")
    build_report(results, tmp_path / "out")
    text = markdown.read_text()
    lines = text[text.index("Is the lead more than noise?"):].splitlines()
    assert any("`tflite-int8` (the most accurate on validation) against the next" in line for line in lines)
    assert next(line for line in lines if line.startswith("| tflite-int8-qat |")).endswith("| within noise |")
    assert next(line for line in lines if line.startswith("| tflite-fp32 |")).endswith("| better (p < 0.05) |")

    store.insert(results := tmp_path / "plain.sqlite", [stored_row("tflite-int8", "int8", 0.9, 0.3),
                                                        stored_row("tflite-fp32", "fp32", 0.8, 0.5)])
    build_report(results, tmp_path / "plain")
    assert "McNemar" not in (tmp_path / "plain" / "report.md").read_text()


def test_rows_of_several_bench_runs_say_which_run_timed_them(tmp_path):
    results = tmp_path / "results.sqlite"
    store.insert(results, [stored_row("tflite-fp32", "fp32", 0.90, 0.51), stored_row("tflite-int8", "int8", 0.91, 0.30)])
    build_report(results, tmp_path / "one")
    assert "bench run" not in (tmp_path / "one" / "report.md").read_text()  # one run: nothing to tell apart
    later = {**stored_row("onnx-fp32", "fp32", 0.90, 0.7), "run_id": "r2", "created": "2026-12-01T00:00:00+00:00"}
    store.insert(results, [later])
    build_report(results, tmp_path / "two")
    speed = (tmp_path / "two" / "report.md").read_text().split("Speed (batch 1")[1]
    assert "| bench run |" in speed and "| onnx-fp32 | r2 (2026-12-01) |" in speed
    assert "| tflite-int8 | r1 (2026-11-28) |" in speed


def test_the_flip_column_compares_each_file_with_the_fp32_file_of_its_folder_and_run():
    from edge_fer.evaluate import pack_classes
    from edge_fer.report import COLUMNS, table_rows

    def scored(path, fmt, precision, predicted, run="r1"):
        return {**row(path, accuracy=0.8, path=path), "format": fmt, "precision": precision, "status": "passed",
                "run_id": run, "metrics": {"scores": {"count": 4, "predicted": pack_classes(np.array(predicted))}}}

    fp32 = scored("a/model-onnx-fp32.onnx", "onnx-fp32", "fp32", [0, 1, 2, 3])
    int8 = scored("a/model-tflite-int8.tflite", "tflite-int8", "int8", [0, 1, 2, 0])
    elsewhere = scored("b/model-tflite-int8.tflite", "tflite-int8", "int8", [0, 1, 2, 3])
    other_run = scored("a/model-onnx-int8-qdq.onnx", "onnx-int8-qdq", "int8", [0, 1, 2, 0], run="r2")
    cells = [line[COLUMNS.index("flips vs float")] for line in table_rows([fp32, int8, elsewhere, other_run], "host-cpu")]
    assert cells == ["0.0000", "0.2500", None, None]
