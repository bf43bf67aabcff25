"""A Jetson as its user meets it: the bundle on JetPack's Python, and over SSH a stand-in board
(tests/fixtures/jetson) whose own trtexec builds and times every engine, with its power mode, clocks and power."""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from edge_fer.bench import store
from edge_fer.cli import main
from tests.fixtures.jetson.standin import BOARD_PYTHON, jetson_target_text, make_board

REPO = Path(__file__).resolve().parents[2]
FERPLUS = REPO / "benchmarks" / "ferplus"
SOURCES = [FERPLUS / "model-onnx-fp32.onnx", FERPLUS / "model-onnx-fp16.onnx", FERPLUS / "model-onnx-int8-qdq.onnx"]
PYENV = Path.home() / ".pyenv" / "versions"
QUICK = ["--min-queries", "10", "--min-duration", "1", "--warmup", "2", "--offline-batch", "4", "--json"]


@pytest.fixture(scope="module")
def board_python():
    if not BOARD_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{BOARD_PYTHON} is missing: .ci/run makes the JetPack 5 stand-in interpreter")
        pytest.skip(f"no JetPack 5 stand-in interpreter at {BOARD_PYTHON} (.ci/run makes it)")
    return BOARD_PYTHON


def unpacked_bundle(tmp_path: Path, artifacts: list[Path]) -> Path:
    out = tmp_path / "bundle.tar.gz"
    assert main(["bundle", *map(str, artifacts), "--target", "jetson-xavier-nx", "--out", str(out)]) == 0
    folder = tmp_path / "unpacked"
    with tarfile.open(out) as tar:
        tar.extractall(folder, filter="data")
    return folder


def test_the_bundle_runs_on_jetpack_5_python_with_tflite_runtime(board_python, tmp_path):
    """Python 3.8, numpy 1.24, onnxruntime 1.16 and tflite-runtime 2.14 only: a p50 for both files."""
    folder = unpacked_bundle(tmp_path, [FERPLUS / "model-onnx-fp32.onnx", FERPLUS / "model-tflite-int8-qat.tflite"])
    result = subprocess.run(["sh", str(folder / "run.sh"), str(board_python)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("board: Python 3.8.")
    for name in ("model-onnx-fp32.onnx", "model-tflite-int8-qat.tflite"):
        [result] = folder.glob(f"results-*-{name}.json")  # results-<content key>-<name>.json
        answer = json.loads(result.read_text())
        assert answer["single_stream"]["p50_ms"] > 0, answer


def test_a_python_3_6_board_is_refused_in_one_line(tmp_path):
    old = sorted(PYENV.glob("3.6.*/bin/python"))
    if not old:
        pytest.skip("no Python 3.6 here (pyenv)")
    folder = unpacked_bundle(tmp_path, [FERPLUS / "model-onnx-fp32.onnx"])
    result = subprocess.run(["sh", str(folder / "run.sh"), str(old[0])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0 and "needs Python 3.8 or newer" in result.stderr
    assert not list(folder.glob("results-*"))


def bench_on(board: Path, loopback_ssh: str, tmp_path: Path, tensorrt: str, artifacts: list[Path], remote_dir: str,
             capsys, **target) -> list[dict]:
    target_file = tmp_path / f"{remote_dir}.toml"
    target_file.write_text(jetson_target_text(loopback_ssh, board, tensorrt, remote_dir, **target))
    database = tmp_path / f"{remote_dir}.sqlite"
    main(["bench", *map(str, artifacts), "--target", str(target_file), "--store", str(database), *QUICK])
    capsys.readouterr()
    return store.fetch(database)


def by_format(rows: list[dict]) -> dict:
    return {row["format"]: row for row in rows}


def test_engines_are_built_and_timed_on_the_board_with_its_trtexec(board_python, loopback_ssh, tmp_path, capsys):
    board = make_board(tmp_path / "xavier", "8.5.2")
    rows = by_format(bench_on(board, loopback_ssh, tmp_path, "8.5.2", [*SOURCES, FERPLUS / "model-tflite-int8-qat.tflite"],
                              "standin-85", capsys))
    assert set(rows) == {"tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8", "onnx-fp32", "tflite-int8-qat"}
    assert {row["status"] for row in rows.values()} == {"passed"}, {f: r["reason"] for f, r in rows.items()}
    for precision in ("fp32", "fp16", "int8"):
        row = rows[f"tensorrt-{precision}"]
        metrics, engine = row["metrics"], row["metrics"]["engine"]
        assert metrics["timed_by"] == "trtexec" and row["p50_ms"] == pytest.approx(7.16092)  # the replayed 8.5+ log
        assert engine["tensorrt"] == "8.5.2" and engine["compute_capability"] == "7.2" and engine["builder"] == "trtexec on the board"
        assert engine["precision_built"] == precision == row["precision"]
        flags = engine["build_flags"]
        assert "--memPoolSize=workspace:1024M" in flags and not any(f.startswith("--builderOptimizationLevel") for f in flags)
        assert any(f.startswith("--exportLayerInfo=") for f in flags)
        power = metrics["power"]
        assert power["before"]["power_mode"] == "MODE_20W_6CORE" and power["before"]["clocks_locked"] is False
        assert power["mean_power_w"] == pytest.approx(1.8, abs=0.15)  # the replayed VDD_IN samples: 1738-1931 mW
        assert power["energy_mj_per_image"] == pytest.approx(power["mean_power_w"] / 130.298 * 1000, rel=1e-3)
        assert metrics["board"]["python"].startswith("3.8.") and "tflite_runtime" in metrics["board"]["runtimes"]
    assert rows["tensorrt-fp16"]["artifact"].endswith("model-onnx-fp32.onnx")  # 8.5 is not strongly typed
    assert rows["tensorrt-int8"]["artifact"].endswith("model-onnx-int8-qdq.onnx")
    for name in ("onnx-fp32", "tflite-int8-qat"):
        metrics = rows[name]["metrics"]
        assert metrics["timed_by"] == "edge_fer runner" and metrics["power"]["before"]["power_mode"] == "MODE_20W_6CORE"
        assert metrics["power"]["energy_mj_per_image"] > 0


def test_a_tensorrt_8_2_board_gets_8_2_flags(board_python, loopback_ssh, tmp_path, capsys):
    board = make_board(tmp_path / "nano", "8.2.1", chip="33", model="NVIDIA Jetson Nano Developer Kit", mode="MAXN")
    rows = by_format(bench_on(board, loopback_ssh, tmp_path, "8.2.1", SOURCES[:2], "standin-82", capsys))
    assert {rows[f]["status"] for f in ("tensorrt-fp32", "tensorrt-fp16")} == {"passed"}, rows
    engine = rows["tensorrt-fp16"]["metrics"]["engine"]
    assert "--workspace=1024" in engine["build_flags"] and not any("memPoolSize" in f or "exportLayerInfo" in f
                                                                   for f in engine["build_flags"])
    assert engine["precision_built"] is None and "no --exportLayerInfo" in engine["precision_source"]
    assert rows["tensorrt-fp16"]["p50_ms"] == pytest.approx(1.38037)  # the replayed 8.2 log
    assert engine["compute_capability"] == "5.3" and rows["tensorrt-fp16"]["metrics"]["power"]["before"]["power_mode"] == "MAXN"


def test_a_board_whose_tensorrt_is_not_the_targets_builds_nothing(board_python, loopback_ssh, tmp_path, capsys):
    board = make_board(tmp_path / "other", "8.2.1")
    rows = bench_on(board, loopback_ssh, tmp_path, "8.5.2", SOURCES[:1], "standin-wrong", capsys)
    engines = [row for row in rows if row["format"].startswith("tensorrt")]
    assert engines and all(row["status"] == "failed" for row in engines)
    assert all("the board's trtexec is TensorRT 8.2.1 but" in row["reason"] and "\n" not in row["reason"] for row in engines)
    assert by_format(rows)["onnx-fp32"]["status"] == "passed"


def prebuilt(tmp_path: Path, name: str, tensorrt: str, capability: str) -> Path:
    engine = tmp_path / name / "model-tensorrt-fp16.engine"
    engine.parent.mkdir()
    engine.write_text(json.dumps({"standin_engine": True, "tensorrt": tensorrt, "precision": "fp16"}))
    record = {"tensorrt": tensorrt, "compute_capability": capability, "builder": "trtexec",
              "build_config": {"image_size": 112, "input_name": "pixels", "precision": "fp16"}}
    (engine.parent / (engine.name + ".json")).write_text(json.dumps(
        {"format": "tensorrt-fp16", "precision": "fp16", "image_size": 112, "engine": record}))
    return engine


def test_a_prebuilt_engine_runs_only_on_the_board_it_was_built_for(board_python, loopback_ssh, tmp_path, capsys):
    board = make_board(tmp_path / "xavier", "8.5.2")
    foreign = prebuilt(tmp_path, "orin", "8.6.2", "8.7")
    own = prebuilt(tmp_path, "xavier-own", "8.5.2", "7.2")
    rows = bench_on(board, loopback_ssh, tmp_path, "8.5.2", [foreign, own], "standin-prebuilt", capsys)
    by_artifact = {Path(row["artifact"]).parent.name: row for row in rows}
    refused = by_artifact["orin"]
    assert refused["status"] == "failed" and "\n" not in refused["reason"]
    assert "built by TensorRT 8.6.2 for compute capability 8.7; this board has TensorRT 8.5.2 on 7.2" in refused["reason"]
    assert by_artifact["xavier-own"]["status"] == "passed" and by_artifact["xavier-own"]["metrics"]["timed_by"] == "trtexec"


def test_dla_int8_is_built_from_the_calibration_cache_on_the_board(board_python, loopback_ssh, tmp_path, capsys):
    board = make_board(tmp_path / "xavier", "8.5.2")
    rows = by_format(bench_on(board, loopback_ssh, tmp_path, "8.5.2", [SOURCES[2]], "standin-dla", capsys, dla_core=0))
    row = rows["tensorrt-int8"]
    assert row["status"] == "passed", row["reason"]
    engine = row["metrics"]["engine"]
    assert engine["implicit_quantization"] and engine["dla_core"] == 0
    assert any(f.startswith("--calib=") for f in engine["build_flags"]) and "--useDLACore=0" in engine["build_flags"]
    assert engine["gpu_fallback_layers"] == ["attention/MatMul"]  # as the board's build log names them


def test_a_hand_built_engine_without_a_record_is_refused_and_one_with_a_record_gets_its_shape(tmp_path, capsys):
    board = make_board(tmp_path / "desktop", "10.3.0")
    target = tmp_path / "desktop.toml"
    target.write_text('kind = "gpu"\naccess = "local"\nformats = ["tensorrt-fp16"]\n[device]\ntensorrt = "10.3.0"\n'
                      f'[tensorrt]\nprecisions = ["fp16"]\nuse_trtexec = true\ntrtexec = "{board / "bin" / "trtexec"}"\n')
    bare = tmp_path / "bare" / "model-tensorrt-fp16.engine"
    bare.parent.mkdir()
    bare.write_text(json.dumps({"standin_engine": True, "tensorrt": "10.3.0"}))
    recorded = prebuilt(tmp_path, "recorded", "10.3.0", "8.9")
    database = tmp_path / "local.sqlite"
    main(["bench", str(bare), str(recorded), "--target", str(target), "--store", str(database), *QUICK])
    capsys.readouterr()
    rows = {Path(row["artifact"]).parent.name: row for row in store.fetch(database)}
    assert rows["bare"]["status"] == "failed" and "cannot tell its input shape" in rows["bare"]["reason"]
    assert rows["recorded"]["status"] == "passed" and rows["recorded"]["metrics"]["timed_by"] == "trtexec"
    assert rows["recorded"]["p50_ms"] == pytest.approx(7.16092)


def test_tegrastats_lines_of_every_layout_give_the_input_power():
    from edge_fer.bench.board import parse_tegrastats

    tx2 = (REPO / "tests" / "fixtures" / "jetson" / "tegrastats.log").read_text().splitlines()[0]
    assert parse_tegrastats(tx2)["vdd_in_mw"] == 1931 and parse_tegrastats(tx2)["temperatures_c"]["GPU"] == 39.0
    orin = "RAM 2906/7620MB CPU [2%@729,1%@729] GR3D_FREQ 0% cpu@47.5C gpu@46.2C VDD_IN 4892mW/4892mW VDD_CPU_GPU_CV 594mW/594mW"
    assert parse_tegrastats(orin)["vdd_in_mw"] == 4892 and parse_tegrastats(orin)["temperatures_c"]["gpu"] == 46.2
    assert parse_tegrastats("RAM 14700/15692MB GPU 463/463 CPU 618/618 SYS5V 3306/3306")["vdd_in_mw"] is None  # no VDD_IN rail
