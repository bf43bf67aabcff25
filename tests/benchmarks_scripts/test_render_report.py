"""The HTML report in a real browser (headless Chromium): no horizontal overflow, no table left in <pre>."""

import importlib.util

import pytest

from edge_fer.bench import store
from edge_fer.report import build_report
from tests.helpers import REPO
from tests.report.test_build import stored_row

spec = importlib.util.spec_from_file_location("render_report", REPO / "benchmarks" / "render_report.py")
render_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_report)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(render_report.chromium_path() is None, reason="needs Chromium (apt-get install chromium)")]


@pytest.mark.parametrize("width", [1280, 800])
def test_the_report_renders_without_overflow_in_chromium(tmp_path, width):
    results = tmp_path / "results.sqlite"
    long_reason = "onnxruntime refused the model: " + "a-very-long-unbroken-reason-" * 12
    store.insert(results, [stored_row("tflite-fp32", "fp32", 0.90, 0.51), stored_row("tflite-int8", "int8", 0.91, 0.30),
                           stored_row("onnx-int8-qdq", "int8", None, None, reason=long_reason)])
    settings = "- settings: " + "; ".join(f"section.key_{i} value_{i}" for i in range(80))
    report = build_report(results, tmp_path / "out", commands=["edge-fer run " + "--set x=" * 40],
                          extras=[("Training", settings)])
    facts = render_report.render(tmp_path / "out" / "report.html", tmp_path / "page.png", width=width)
    assert facts["tables"] == 4 and facts["tables_in_pre"] == 0 and facts["images"] == 1
    assert facts["broken_images"] == [] and not facts["horizontal_overflow"] and facts["scrolling_tables"] == [], facts
    assert (tmp_path / "page.png").stat().st_size > 20_000 and report["html"].endswith("report.html")
