"""benchmarks/precision_sensitivity.py on the shared tiny model: every asked layer gets both files scored."""

import json
import subprocess
import sys

from tests.helpers import REPO


def test_each_layer_is_scored_alone_in_fp32_and_alone_in_int8(exported, tmp_path):
    root, _ = exported
    out = tmp_path / "sensitivity"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "precision_sensitivity.py"), "--model",
                             str(root / "float"), "--dataset", "synthetic", "--root", "", "--layers", "2",
                             "--calibration-images", "32", "--debug-images", "32", "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.with_suffix(".json").read_text())
    assert len(record["rows"]) == 2 and [row["error_rank"] for row in record["rows"]] == [1, 2]
    for row in record["rows"]:
        assert 0 <= row["valid_alone_fp32"] <= 1 and 0 <= row["valid_alone_int8"] <= 1
        assert abs(row["gain_kept_fp32"] - (row["valid_alone_fp32"] - record["baseline"]["int8"])) < 1e-12
    assert sorted(row["sensitivity_rank"] for row in record["rows"]) == [1, 2]
    assert "| layer | error rank | sensitivity rank |" in out.with_suffix(".md").read_text()
