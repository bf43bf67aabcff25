import time

import numpy as np
import pytest

from edge_fer.bench.timing import TimingSettings, interleaved_single_stream, latency_stats, offline, pool_rounds, single_stream
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
    assert stats["p50_ms"] < 4.0  # a 5 ms prepare() inside the timed region would put every query above 6 ms


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


class DriftingRunner(Runner):
    """A host that slows down as the run goes on: every call takes 1 ms × (1 + 4 × seconds since `clock[0]`)."""

    def _load(self):
        self.input_spec = InputSpec(4, 4, 3)
        self.clock = self.options["clock"]

    def _prepare(self, batch):
        return batch

    def _run(self, prepared):
        time.sleep(0.001 * (1 + 4 * (time.perf_counter() - self.clock[0])))
        return np.zeros((len(prepared), 2), np.float32)


def drifted_p50s(tmp_path, rounds: int) -> tuple[float, float]:
    clock = [time.perf_counter()]
    first, second = DriftingRunner(tmp_path, clock=clock).load(), DriftingRunner(tmp_path, clock=clock).load()
    samples = np.zeros((2, 4, 4, 3), np.float32)
    settings = TimingSettings(warmup_queries=1, min_queries=8, min_duration_s=0.3, rounds=rounds)
    clock[0] = time.perf_counter()
    pooled = interleaved_single_stream({"first": (first, samples), "second": (second, samples)}, settings)
    return pooled["first"], pooled["second"]


def test_interleaved_rounds_treat_two_identical_models_alike_on_a_drifting_host(tmp_path):
    back_to_back = drifted_p50s(tmp_path, rounds=1)
    interleaved = drifted_p50s(tmp_path, rounds=8)
    assert back_to_back[1]["p50_ms"] / back_to_back[0]["p50_ms"] > 1.5  # the second one looks much slower (1.8 here)
    assert 1 / 1.2 < interleaved[1]["p50_ms"] / interleaved[0]["p50_ms"] < 1.2  # within 10% here, two trainings running
    for stats in interleaved:
        assert stats["rounds"] == 8 and len(stats["round_p50_ms"]) == 8 and "latencies_ms" not in stats
        assert stats["count"] >= 8 and min(stats["round_p50_ms"]) <= stats["p50_ms"] <= max(stats["round_p50_ms"])


def test_a_round_gets_its_share_of_the_queries_and_the_time():
    one = TimingSettings(min_queries=200, min_duration_s=5.0, max_duration_s=120.0, rounds=6).per_round()
    assert (one.min_queries, one.rounds) == (34, 1)
    assert one.min_duration_s == pytest.approx(5.0 / 6) and one.max_duration_s == pytest.approx(20.0)


def test_pooled_rounds_are_the_statistics_of_every_query():
    rounds = [{"p50_ms": 2.0, "latencies_ms": [1.0, 2.0, 3.0]}, {"p50_ms": 11.0, "latencies_ms": [10.0, 11.0, 12.0]}]
    pooled = pool_rounds(rounds)
    assert pooled["count"] == 6 and pooled["p50_ms"] == pytest.approx(6.5) and pooled["min_ms"] == 1.0
    assert pooled["round_p50_ms"] == [2.0, 11.0] and pooled["qps"] == pytest.approx(1000 / 6.5)


def test_a_row_timed_in_rounds_keeps_every_rounds_host_facts_and_is_busy_if_any_round_was():
    from edge_fer.bench.runner import hosts_of_rounds

    quiet = {"cpu": "x", "other_load_cores": 0.05, "loadavg_1m": 0.3, "busy": False}
    noisy = {"cpu": "x", "other_load_cores": 0.9, "loadavg_1m": 1.4, "busy": True}
    merged = hosts_of_rounds([quiet, noisy, quiet])
    assert merged["busy"] is True and merged["other_load_cores"] == 0.9 and len(merged["rounds"]) == 3
    assert merged["rounds"][1] == {"other_load_cores": 0.9, "loadavg_1m": 1.4, "busy": True}
    assert hosts_of_rounds([quiet, quiet])["busy"] is False and hosts_of_rounds([None, None]) is None
