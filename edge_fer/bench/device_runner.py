"""The device-side benchmark of ONE artifact: load, time, score. Needs numpy and the artifact's runtime only.

    python -m edge_fer.bench.device_runner ARTIFACT [--images X.npy] [--threads N] ...

Prints one JSON object (with the probabilities of every image, scored on the host). Images are uint8 (N, size, size, 1|3) at the artifact's input size.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace

import numpy as np


def to_float_rgb(images: np.ndarray) -> np.ndarray:
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images.astype(np.float32)


def offline_batch(artifact: str, export_format, asked: int) -> int:
    """An engine's Offline batch is its profile's opt batch (the shape TensorRT tuned its kernels for); a profile
    with opt = 1 gets no Offline run rather than a batch it was not built for."""
    if export_format.runtime != "tensorrt":
        return asked
    from edge_fer.artifacts import read_metadata

    build = ((read_metadata(artifact) or {}).get("engine") or {}).get("build_config") or {}
    return min(asked, int(build.get("opt_batch") or 1))


def score(runner, images: np.ndarray, batch_size: int) -> np.ndarray:
    step = max(1, min(batch_size, runner.input_spec.max_batch or batch_size))
    return np.concatenate([runner.infer(to_float_rgb(images[i:i + step])) for i in range(0, len(images), step)])


def run(args) -> dict:
    from edge_fer.artifacts import format_of_artifact
    from edge_fer.bench.board import PowerMonitor, find_program
    from edge_fer.bench.host import OtherLoad, host_facts
    from edge_fer.bench.timing import TimingSettings, offline, single_stream
    from edge_fer.runtimes import runtime_for

    settings = TimingSettings(warmup_queries=args.warmup, min_queries=args.min_queries, min_duration_s=args.min_duration,
                              max_duration_s=args.max_duration, offline_batch=args.offline_batch,
                              offline_min_duration_s=args.offline_duration)
    export_format = format_of_artifact(args.artifact)
    images = np.load(args.images, allow_pickle=False) if args.images else None
    started = time.perf_counter()
    runner = runtime_for(args.artifact, threads=args.threads)
    runner.load()
    load_s = time.perf_counter() - started
    try:
        spec = runner.input_spec
        if images is not None:
            pool = to_float_rgb(images[:64])
        else:
            pool = np.random.default_rng(0).uniform(0, 255, (16, spec.height, spec.width, spec.channels)).astype(np.float32)
        on_jetson = find_program("tegrastats") is not None or find_program("nvpmodel") is not None
        with PowerMonitor() as monitor, OtherLoad() as load:
            timed = single_stream(runner, pool, settings, keep_latencies=args.keep_latencies)
        result = {"format": export_format.name, "load_s": load_s, "single_stream": timed, "timed_by": "edge_fer runner",
                  "host": host_facts(args.threads, load.cores)}
        if on_jetson:  # power mode, clocks, temperatures around the block; energy per image from VDD_IN
            result["power"] = monitor.record(timed.get("qps"))
        batch = offline_batch(args.artifact, export_format, args.offline_batch)
        if export_format.batchable and batch > 1 and not args.latency_only:
            result["offline"] = offline(runner, pool, replace(settings, offline_batch=batch))
        if images is not None and not args.latency_only:
            probabilities = score(runner, images, args.offline_batch)
            result["probabilities"] = probabilities.round(6).tolist()
    finally:
        runner.close()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="edge_fer.bench.device_runner")
    parser.add_argument("artifact")
    parser.add_argument("--images")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--min-queries", type=int, default=200)
    parser.add_argument("--min-duration", type=float, default=5.0)
    parser.add_argument("--max-duration", type=float, default=120.0)
    parser.add_argument("--offline-batch", type=int, default=32)
    parser.add_argument("--offline-duration", type=float, default=3.0, help="seconds of Offline batches at least")
    parser.add_argument("--keep-latencies", action="store_true", help="print every query's latency (for pooling rounds)")
    parser.add_argument("--latency-only", action="store_true", help="SingleStream only: no Offline, no scoring")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except Exception as error:  # reported as this artifact's failure; the host goes on with the next
        print(json.dumps({"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
