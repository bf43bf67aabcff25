import time

import numpy as np
import pytest

from edge_fer.bench.timing import TimingSettings, latency_stats, offline, single_stream
from edge_fer.runtimes.base import InputSpec, Runner


class SleepyRunner(Runner):
    """run() takes 1 ms per call plus 0.1 ms per image; prepare() takes 5 ms, outside the timed region."""

    def _load(self):
        self.input_spec = InputSpec(4, 4, 3)
        self.calls = self.prepared = 0

    def _prepare(self, batch):
        self.prepared += 1
        time.sleep(0.005)
        return batch.astype(np.int8)

    def _run(self, prepared):
        assert prepared.dtype == np.int8
        self.calls += 1
        time.sleep(0.001 + 0.0001 * len(prepared))
        return np.zeros((len(prepared), 2), np.float32)


def test_single_stream_meets_both_minimums(tmp_path):
    runner = SleepyRunner(tmp_path).load()
    stats = single_stream(runner, np.zeros((3, 4, 4, 3), np.float32),
                          TimingSettings(warmup_queries=5, min_queries=30, min_duration_s=0.2))
    assert stats["count"] >= 30 and stats["count"] * stats["mean_ms"] >= 0.2 * 1000 * 0.9
    assert 1.0 <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert runner.calls == stats["count"] + 5


def test_only_run_is_timed_each_sample_prepared_once(tmp_path):
    runner = SleepyRunner(tmp_path).load()
    stats = single_stream(runner, np.zeros((3, 4, 4, 3), np.float32),
                          TimingSettings(warmup_queries=2, min_queries=20, min_duration_s=0.05))
    assert runner.prepared == 3
    assert stats["p90_ms"] < 4.0  # a 5 ms prepare() inside the timed region would show


def test_offline_is_faster_per_image_than_single_stream(tmp_path):
    runner = SleepyRunner(tmp_path).load()
    settings = TimingSettings(offline_batch=16, offline_min_duration_s=0.2)
    result = offline(runner, np.zeros((3, 4, 4, 3), np.float32), settings)
    assert result["batch"] == 16 and result["images"] >= 64
    assert result["images_per_s"] > 1000 / 1.2 * 2


def test_latency_stats():
    stats = latency_stats(np.arange(1, 101, dtype=float))
    assert stats["p50_ms"] == pytest.approx(50.5) and stats["p90_ms"] == pytest.approx(90.1)
    assert stats["min_ms"] == 1.0 and stats["count"] == 100
