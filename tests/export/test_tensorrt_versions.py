"""Version truth: flags and the ONNX source come from the TensorRT that builds, an engine's precision is read back
from the engine, and a builder of another TensorRT than the target's builds nothing. TensorRT 11 here is the
stand-in package in tests/fixtures/tensorrt11 (no TensorRT installs without an NVIDIA GPU)."""

import json
import sys
from pathlib import Path

import pytest

from edge_fer.cli import main
from edge_fer.export import tensorrt

REPO = Path(__file__).resolve().parents[2]
FERPLUS = REPO / "benchmarks" / "ferplus"
STANDIN = REPO / "tests" / "fixtures" / "tensorrt11"
STANDIN_TRTEXEC = REPO / "tests" / "fixtures" / "jetson"


@pytest.fixture
def tensorrt11(monkeypatch):
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.setattr(tensorrt, "gpu_info", lambda: {"gpu": "stand-in GPU", "compute_capability": "8.9", "driver": "0"})
    yield
    sys.modules.pop("tensorrt", None)


def rtx_at(tmp_path: Path, version: str) -> Path:
    target = tmp_path / f"rtx-{version}.toml"
    target.write_text((REPO / "targets" / "rtx-4090.toml").read_text().replace('tensorrt = "10.x"', f'tensorrt = "{version}"'))
    return target


def test_tensorrt_11_here_and_a_target_at_10_build_nothing(tensorrt11, tmp_path, capsys):
    out = tmp_path / "engines" / "model.engine"
    assert main(["engine", str(FERPLUS), "--precision", "fp16", "--target", "rtx-4090", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "is TensorRT 11.0.0 but the plan is for TensorRT 10.x" in error and "nothing built" in error
    assert not out.parent.exists()


def test_at_11_on_both_the_fp16_engine_comes_from_the_fp16_onnx_and_is_recorded_fp16(tensorrt11, tmp_path, capsys):
    out = tmp_path / "model-tensorrt-fp16.engine"
    assert main(["engine", str(FERPLUS), "--precision", "fp16", "--target", str(rtx_at(tmp_path, "11.0.0")),
                 "--out", str(out)]) == 0, capsys.readouterr().err
    record = json.loads(Path(f"{out}.json").read_text())
    assert record["source_model"].endswith("model-onnx-fp16.onnx") and record["precision"] == "fp16"
    engine = record["engine"]
    assert engine["tensorrt"] == "11.0.0" and engine["precision_built"] == "fp16"
    assert engine["precision_source"] == "IEngineInspector" and engine["build_config"]["tensorrt"] == "11.0.0"


def test_an_fp32_onnx_built_as_fp16_on_strongly_typed_tensorrt_is_refused(tensorrt11, tmp_path, capsys):
    out = tmp_path / "model-tensorrt-fp16.engine"
    assert main(["engine", str(FERPLUS / "model-onnx-fp32.onnx"), "--precision", "fp16", "--target",
                 str(rtx_at(tmp_path, "11.0.0")), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "asked for a fp16 engine but" in error and "runs fp32 layers" in error and not out.exists()


def test_builder_trtexec_plans_flags_for_the_trtexec_found(tmp_path, capsys):
    from tests.fixtures.jetson.standin import make_board

    board = make_board(tmp_path / "board", "10.3.0")
    target = rtx_at(tmp_path, "10.x")
    target.write_text(target.read_text() + f'trtexec = "{board / "bin" / "trtexec"}"\n')
    assert main(["engine", str(FERPLUS), "--precision", "fp16", "--target", str(target), "--builder", "trtexec",
                 "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["tensorrt"] == "10.x" and "--memPoolSize=workspace:4096M" in plan["trtexec_command"]
    older = rtx_at(tmp_path, "8.6.1")
    older.write_text(older.read_text() + f'trtexec = "{board / "bin" / "trtexec"}"\n')
    assert main(["engine", str(FERPLUS), "--precision", "fp16", "--target", str(older), "--builder", "trtexec",
                 "--dry-run"]) == 2
    assert "is TensorRT 10.3.0 but the plan is for TensorRT 8.6.1" in capsys.readouterr().err
