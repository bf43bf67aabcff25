"""MLPerf-style timing, shortened: warm-up, SingleStream (one query at a time until both a minimum query count
and a minimum duration are met) and Offline (batched throughput). As in MLPerf, samples are first converted to the model's own input format
(runner.prepare: float32, or int8 for an int8-input TFLite model) outside the timed region, the way LoadGen's
sample library preloads preprocessed samples; only runner.run (feed, invoke, read the probabilities) is timed,
with time.perf_counter_ns (monotonic). No TensorFlow here: this runs on the device."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np


@dataclass
class TimingSettings:
    warmup_queries: int = 20
    min_queries: int = 200
    min_duration_s: float = 5.0
    max_duration_s: float = 120.0
    offline_batch: int = 32
    offline_min_duration_s: float = 3.0
    rounds: int = 1  # >1: SingleStream split into this many short rounds, interleaved with the other models

    def per_round(self) -> "TimingSettings":
        """One round's share of the queries and the duration (warm-up is done in every round)."""
        return replace(self, min_queries=max(1, -(-self.min_queries // self.rounds)),
                       min_duration_s=self.min_duration_s / self.rounds, max_duration_s=self.max_duration_s / self.rounds,
                       rounds=1)


def latency_stats(latencies_ms: np.ndarray) -> dict:
    return {
        "count": int(len(latencies_ms)),
        "p50_ms": float(np.percentile(latencies_ms, 50)),
        "p90_ms": float(np.percentile(latencies_ms, 90)),
        "p99_ms": float(np.percentile(latencies_ms, 99)),
        "mean_ms": float(np.mean(latencies_ms)),
        "std_ms": float(np.std(latencies_ms)),
        "min_ms": float(np.min(latencies_ms)),
    }


def timed_run(runner, prepared: np.ndarray) -> float:
    start = time.perf_counter_ns()
    runner.run(prepared)
    return (time.perf_counter_ns() - start) / 1e6


def single_stream(runner, samples: np.ndarray, settings: TimingSettings, keep_latencies: bool = False) -> dict:
    """One image per query, back to back, cycling through `samples` (N, H, W, 3). `keep_latencies`: also return
    every query's latency, for pooling rounds."""
    queries = [runner.prepare(sample[None]) for sample in samples]
    for index in range(settings.warmup_queries):
        runner.run(queries[index % len(queries)])
    latencies = []
    started = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - started
        enough = len(latencies) >= settings.min_queries and elapsed >= settings.min_duration_s
        if enough or elapsed >= settings.max_duration_s:
            break
        latencies.append(timed_run(runner, queries[len(latencies) % len(queries)]))
    stats = latency_stats(np.asarray(latencies))
    stats["qps"] = 1000.0 / stats["mean_ms"]
    if keep_latencies:
        stats["latencies_ms"] = [round(value, 5) for value in latencies]
    return stats


def pool_rounds(rounds: list[dict]) -> dict:
    """SingleStream rounds of one model (each with its latencies) as one result: the statistics of every query
    of every round, and each round's p50 (their spread shows how much the host drifted)."""
    latencies = np.concatenate([np.asarray(one["latencies_ms"], dtype=np.float64) for one in rounds])
    stats = latency_stats(latencies)
    stats["qps"] = 1000.0 / stats["mean_ms"]
    stats["rounds"] = len(rounds)
    stats["round_p50_ms"] = [round(one["p50_ms"], 5) for one in rounds]
    return stats


def round_order(items: list, round_index: int) -> list:
    """Forward in even rounds, backward in odd ones: a host that speeds up or slows down during the run is shared
    out evenly."""
    return list(items) if round_index % 2 == 0 else list(items)[::-1]


def interleaved_single_stream(jobs: dict, settings: TimingSettings) -> dict:
    """SingleStream of several loaded models in one process, in `settings.rounds` interleaved rounds
    (`round_order`): on a host whose speed drifts (a VM, a laptop, thermal limits), back-to-back runs of the same
    model differ by more than the models do. jobs: name -> (runner, samples). Returns name -> pooled statistics."""
    per_round = settings.per_round()
    results = {name: [] for name in jobs}
    for round_index in range(settings.rounds):
        for name in round_order(list(jobs), round_index):
            runner, samples = jobs[name]
            results[name].append(single_stream(runner, samples, per_round, keep_latencies=True))
    return {name: pool_rounds(rounds) for name, rounds in results.items()}


def offline(runner, samples: np.ndarray, settings: TimingSettings) -> dict:
    """Batches of `offline_batch` images until the minimum duration; images per second of run time."""
    batch_size = min(settings.offline_batch, runner.input_spec.max_batch or settings.offline_batch)
    reps = int(np.ceil(batch_size / len(samples)))
    batch = runner.prepare(np.concatenate([samples] * reps)[:batch_size])
    runner.run(batch)  # warm-up (and, for TFLite, the one-off tensor resize)
    total_ms, images = 0.0, 0
    while total_ms < settings.offline_min_duration_s * 1000 or images < 4 * batch_size:
        total_ms += timed_run(runner, batch)
        images += batch_size
    return {"batch": batch_size, "images": images, "images_per_s": images / (total_ms / 1000.0)}
