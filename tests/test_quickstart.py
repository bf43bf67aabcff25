"""The main job on its built-in default, as the README's first command runs it (slow: about 7 minutes on 2 cores)."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_the_main_job_runs_every_stage_and_every_export_passes_its_floor(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edge_fer.cli", "run", "--set", f"runs={tmp_path / 'runs'}"],
                            cwd=REPO, capture_output=True, text=True, timeout=1800)
    exports = json.loads((tmp_path / "runs" / "quickstart" / "export" / "export.json").read_text())
    failed = {row["format"]: row.get("agreement_with_float") for row in exports["results"] if row["status"] != "passed"}
    assert not failed, f"exports under their parity floor: {failed}"
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "quickstart" / "report" / "report.md").is_file()
