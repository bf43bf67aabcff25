"""benchmarks/mixed_search.py on the shared tiny model: ranked layers kept fp32, all files in one bench run."""

import json
import subprocess
import sys

from edge_fer.bench import store
from tests.helpers import REPO


def test_the_worst_layers_are_kept_fp32_and_every_file_is_benched_in_one_run(exported, tmp_path):
    root, _ = exported
    out, results = tmp_path / "search", tmp_path / "results"
    argv = [sys.executable, str(REPO / "benchmarks" / "mixed_search.py"), "--model", str(root / "float"),
            "--int8", str(root / "artifacts" / "model-tflite-int8.tflite"), "--dataset", "synthetic", "--root", "",
            "--keep", "1", "2", "--rounds", "2", "--debug-images", "32", "--out", str(out),
            "--store", str(tmp_path / "mixed.sqlite"), "--results", str(results)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    search = json.loads((results / "search.json").read_text())
    formats = [row["format"] for row in search["rows"]]
    assert formats == ["tflite-int8", "tflite-fp32", "tflite-mixed", "tflite-mixed"]
    assert [row["keep_float"] for row in search["rows"][2:]] == [search["ranked_layers"][:1], search["ranked_layers"][:2]]
    assert search["rows"][1]["flips_vs_fp32_test"] == 0.0 and all(row["flips_vs_fp32_test"] is not None for row in search["rows"])
    assert len({row["run_id"] for row in search["rows"]}) == 1  # one bench run
    assert len(store.fetch(tmp_path / "mixed.sqlite")) == 4 and (results / "report" / "report.md").is_file()
    assert search["chosen"] is not None and "| fp32 layers |" in (results / "search.md").read_text()
