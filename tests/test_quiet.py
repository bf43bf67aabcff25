"""The command line keeps TensorFlow's own start-up messages off the console and in the log file."""

import os
import subprocess
import sys


def test_tensorflow_noise_goes_to_the_log_not_the_console(tmp_path):
    log = tmp_path / "native.log"
    env = {**os.environ, "EDGE_FER_LOG": str(log)}
    env.pop("EDGE_FER_DEBUG", None)
    result = subprocess.run([sys.executable, "-m", "edge_fer.cli", "model", "summary", "patt_lite", "--image-size", "64",
                             "--json"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"macs"' in result.stdout
    assert result.stderr == "", result.stderr  # no absl/oneDNN/cuInit lines
    assert "oneDNN" in log.read_text() or "cuda" in log.read_text().lower()


def test_errors_still_reach_the_console(tmp_path):
    env = {**os.environ, "EDGE_FER_LOG": str(tmp_path / "native.log")}
    result = subprocess.run([sys.executable, "-m", "edge_fer.cli", "data", "inspect", "ferplus", "--root", str(tmp_path / "x")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2 and "dataset root does not exist" in result.stderr
    assert "--set data.root=PATH" in result.stderr
