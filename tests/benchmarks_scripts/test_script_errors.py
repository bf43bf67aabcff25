"""The benchmark scripts answer a mistake in what they were given with one 'error:' line, as the CLI does."""

import ast
import subprocess
import sys

from tests.helpers import REPO


def test_a_user_error_inside_a_script_is_one_line_without_a_traceback(tmp_path):
    missing = tmp_path / "no-such-model"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "precision_sensitivity.py"), "--model",
                             str(missing), "--dataset", "synthetic", "--root", "", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"error: model file {missing} does not exist; pass a model.keras "
                                                      "or the folder that holds it")
    assert not list(tmp_path.glob("out*"))


def test_every_script_that_uses_edge_fer_enters_through_run_script():
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        tree = ast.parse(script.read_text())
        uses_edge_fer = any(isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edge_fer")
                            for node in ast.walk(tree))
        if uses_edge_fer:
            assert "sys.exit(run_script(main))" in script.read_text(), f"{script.name} does not enter through run_script"
