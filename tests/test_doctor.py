"""`edge-fer doctor`: finds what this machine has, names what is missing with the command that adds it, and asks an
SSH board for its Python, runtimes and trtexec."""

import json
import os
from importlib import metadata

import pytest

from edge_fer import doctor
from edge_fer.cli import main
from tests.fixtures.jetson.standin import BOARD_PYTHON, jetson_target_text, make_board


def test_this_machine_has_what_the_main_job_needs(capsys):
    checks = doctor.diagnose()
    required = [c for c in checks if c.what in ("Python", "TensorFlow", "tf_keras", "LiteRT", "onnxruntime")]
    assert len(required) == 5 and all(c.status == doctor.OK and c.found != "-" for c in required)
    assert main(["doctor", "--json"]) == 0
    assert {row["what"] for row in json.loads(capsys.readouterr().out)} == {c.what for c in checks}


def test_a_missing_package_is_named_with_the_command_that_adds_it(monkeypatch, capsys):
    real = metadata.version

    def without_onnxruntime(name):
        if name.startswith("onnxruntime"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(doctor.metadata, "version", without_onnxruntime)
    [check] = [c for c in doctor.diagnose() if c.what == "onnxruntime"]
    assert (check.status, check.found, check.fix) == (doctor.MISSING, "-", "pip install -e '.[dev]'")
    assert main(["doctor"]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_a_program_not_on_path_is_optional_with_its_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    chromium = next(c for c in doctor.diagnose() if c.what == "Chromium")
    assert (chromium.status, chromium.fix) == (doctor.OPTIONAL, "apt-get install chromium")


def test_an_ssh_board_is_asked_for_its_python_runtimes_and_trtexec(loopback_ssh, tmp_path):
    if not BOARD_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{BOARD_PYTHON} is missing: .ci/run makes the JetPack 5 stand-in interpreter")
        pytest.skip(f"no JetPack 5 stand-in interpreter at {BOARD_PYTHON}")
    board = make_board(tmp_path / "xavier", "8.5.2")
    target = tmp_path / "board.toml"
    target.write_text(jetson_target_text(loopback_ssh, board, "8.5.2", "doctor-test"))
    check = doctor.target_check(str(target))
    assert check.status == doctor.OK, check
    assert "Python 3.8." in check.found and "onnxruntime" in check.found and "TensorRT 8.5" in check.found


def test_an_unreachable_board_is_one_row_with_what_to_check(tmp_path):
    target = tmp_path / "gone.toml"
    target.write_text('kind = "jetson"\naccess = "ssh"\nssh = "nobody@127.0.0.1"\nssh_port = 9\n')
    check = doctor.target_check(str(target))
    assert check.status == doctor.MISSING and "check ssh nobody@127.0.0.1" in check.fix
