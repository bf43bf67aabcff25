import time

import numpy as np
import pytest

from edge_fer.bench.timing import TimingSettings, latency_stats, offline, single_stream
from edge_fer.runtimes.base import InputSpec


class SleepyRunner:
    """Takes 1 ms per call plus 0.1 ms per image."""

    input_spec = InputSpec(4, 4, 3)

    def __init__(self):
        self.calls = 0

    def infer(self, batch):
        self.calls += 1
        time.sleep(0.001 + 0.0001 * len(batch))
        return np.zeros((len(batch), 2), np.float32)


def test_single_stream_meets_both_minimums():
    runner = SleepyRunner()
    stats = single_stream(runner, np.zeros((3, 4, 4, 3), np.float32),
                          TimingSettings(warmup_queries=5, min_queries=30, min_duration_s=0.2))
    assert stats["count"] >= 30 and stats["count"] * stats["mean_ms"] >= 0.2 * 1000 * 0.9
    assert 1.0 <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert runner.calls == stats["count"] + 5


def test_offline_is_faster_per_image_than_single_stream():
    runner = SleepyRunner()
    settings = TimingSettings(offline_batch=16, offline_min_duration_s=0.2)
    result = offline(runner, np.zeros((3, 4, 4, 3), np.float32), settings)
    assert result["batch"] == 16 and result["images"] >= 64
    assert result["images_per_s"] > 1000 / 1.2 * 2


def test_latency_stats():
    stats = latency_stats(np.arange(1, 101, dtype=float))
    assert stats["p50_ms"] == pytest.approx(50.5) and stats["p90_ms"] == pytest.approx(90.1)
    assert stats["min_ms"] == 1.0 and stats["count"] == 100
