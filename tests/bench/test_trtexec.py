import json

import pytest

from edge_fer.bench.trtexec import parse_trtexec, parse_trtexec_file
from edge_fer.cli import main
from edge_fer.errors import UserError
from tests.helpers import TRTEXEC_FIXTURES


def test_trt10_summary():
    parsed = parse_trtexec_file(TRTEXEC_FIXTURES / "trt10_summary_nvidia-tensorrt-4177.log")
    assert parsed["throughput_qps"] == 130.298
    assert parsed["latency_ms"] == {"min": 5.38672, "max": 13.3664, "mean": 7.60628, "median": 7.16092,
                                    "p90": 10.2996, "p95": 10.8698, "p99": 12.9675}
    assert parsed["gpu_compute_ms"]["mean"] == 7.58404
    assert parsed["h2d_ms"]["p99"] == 0.0515137 and parsed["d2h_ms"]["median"] == 0.00439453
    assert parsed["total_host_walltime_s"] == 3.00082 and parsed["total_gpu_compute_s"] == 2.96536


def test_trt8_summary_with_one_percentile_and_a_warning():
    parsed = parse_trtexec_file(TRTEXEC_FIXTURES / "trt8_summary_yolov7-pr329.log")
    assert parsed["throughput_qps"] == 716.632
    assert parsed["latency_ms"]["mean"] == 1.38629 and parsed["latency_ms"]["p99"] == 1.55853
    assert parsed["latency_ms"]["p90"] is None and parsed["latency_ms"]["p95"] is None
    assert parsed["h2d_ms"]["max"] == 0.0
    assert any("unstable" in warning for warning in parsed["warnings"])


def test_legacy_host_latency_block():
    parsed = parse_trtexec_file(TRTEXEC_FIXTURES / "trt8_legacy_host-latency_nvidia-tensorrt-2054.log")
    assert parsed["latency_ms"]["mean"] == 1.66069 and parsed["latency_ms"]["median"] == 1.65601
    assert parsed["latency_ms"]["p99"] == 1.67065 and parsed["latency_ms"]["min"] == 1.64058
    assert parsed["end_to_end_ms"]["p99"] == 3.03931 and parsed["end_to_end_ms"]["max"] == 7.65552
    assert parsed["throughput_qps"] == 0.0
    assert parsed["gpu_compute_ms"]["mean"] is None


@pytest.mark.parametrize("name", sorted(p.name for p in TRTEXEC_FIXTURES.glob("*.log")) if TRTEXEC_FIXTURES.exists() else [])
def test_cli_json_on_every_fixture(name, capsys):
    assert main(["trtexec", "parse", str(TRTEXEC_FIXTURES / name), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["latency_ms"]) == {"min", "max", "mean", "median", "p90", "p95", "p99"}
    assert "throughput_qps" in payload and "gpu_compute_ms" in payload
    assert main(["trtexec", "parse", str(TRTEXEC_FIXTURES / name)]) == 0
    assert "throughput" in capsys.readouterr().out


@pytest.mark.hostile("malformed-input")
def test_not_a_trtexec_log(tmp_path):
    (tmp_path / "x.log").write_text("hello\n")
    with pytest.raises(UserError, match="no trtexec performance summary"):
        parse_trtexec_file(tmp_path / "x.log")
    assert parse_trtexec("")["throughput_qps"] is None


@pytest.mark.hostile("exit-codes")
def main_json(tmp_path, capsys) -> str:
    from edge_fer.cli import main

    log = tmp_path / "sound.log"
    log.write_text("[11/28/2026-10:00:00] [I] Throughput: 900 qps\n"
                   "[11/28/2026-10:00:00] [I] Latency: min = 1 ms, max = 2 ms, mean = 1 ms, median = 1 ms\n")
    assert main(["trtexec", "parse", str(log), "--json"]) == 0
    return capsys.readouterr().out


def test_json_output_is_strict_for_absurd_logs(tmp_path, capsys):
    import json

    from edge_fer.cli import main

    log = tmp_path / "absurd.log"
    log.write_text("[11/28/2026-10:00:00] [I] Throughput: 1e999 qps\n"
                   "[11/28/2026-10:00:00] [I] Latency: min = 1e999 ms, max = 2 ms, mean = 1 ms, median = 1 ms\n")
    # figures no real run prints: refused in one line (never written out as non-standard JSON Infinity)
    assert main(["trtexec", "parse", str(log), "--json"]) == 2
    captured = capsys.readouterr()
    assert "Infinity" not in captured.out and "not a real log" in captured.err
    assert json.loads(main_json(tmp_path, capsys))["latency_ms"]["max"] == 2.0  # a sound log still parses to strict JSON


@pytest.mark.hostile("malformed-input")
def test_a_log_with_impossible_figures_is_refused(tmp_path, capsys):
    from edge_fer.cli import main

    real = (TRTEXEC_FIXTURES / "trt8_summary_yolov7-pr329.log").read_text()
    log = tmp_path / "negative.log"
    log.write_text(real.replace("Throughput: 716.632 qps", "Throughput: -5 qps"))
    assert main(["trtexec", "parse", str(log)]) == 2
    assert "throughput_qps = -5" in capsys.readouterr().err
    assert parse_trtexec(real)["problems"] == []
