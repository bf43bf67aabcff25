"""Where int8 pays off: fp32 vs int8 TFLite latency of growing prefixes of a trained model, block by block.

Each prefix (the model cut after a named layer) is converted to fp32 and to full-integer int8 TFLite, and timed
on LiteRT + XNNPACK at batch 1 (p50 of the interpreter's invoke). The difference between
consecutive prefixes is the cost of that block, so the table shows which blocks int8 speeds up and which it
does not.

    python benchmarks/int8_layer_profile.py runs/latency-224 [--threads 2] [--min-duration 2] [--out FILE.json]
        [--markdown FILE.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edge_fer  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edge_fer.errors import run_script

CUTS = ["conv1_relu", "conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_7_relu", "conv_dw_9_relu", None]


def prefix_model(model, layer_name: str | None):
    import tf_keras as keras

    return model if layer_name is None else keras.Model(model.input, model.get_layer(layer_name).output)


def p50_ms(path: Path, threads: int, min_duration_s: float) -> float:
    """p50 of the interpreter's invoke alone: a prefix ends in a large feature map, and copying or dequantizing
    it (which runner.run would do) is not part of the model's cost."""
    from edge_fer.runtimes.litert import LiteRTRunner

    with LiteRTRunner(path, threads=threads, classifier=False) as runner:  # prefixes end in feature maps
        spec = runner.input_spec
        image = np.random.default_rng(0).uniform(0, 255, (1, spec.height, spec.width, spec.channels)).astype(np.float32)
        runner.run(runner.prepare(image))  # sizes the tensors for batch 1 and warms up
        interpreter = runner.interpreter
        for _ in range(20):
            interpreter.invoke()
        latencies, started = [], time.perf_counter()
        while time.perf_counter() - started < min_duration_s or len(latencies) < 100:
            start = time.perf_counter_ns()
            interpreter.invoke()
            latencies.append((time.perf_counter_ns() - start) / 1e6)
        return float(np.percentile(latencies, 50))


def profile(model_dir: str, threads: int, min_duration_s: float) -> list[dict]:
    from edge_fer.export.converters import keras_to_tflite
    from edge_fer.models.loading import load_model

    model, _ = load_model(model_dir)
    size = int(model.input_shape[1])
    calibration = np.random.default_rng(1).uniform(0, 255, (16, size, size, 3)).astype(np.float32)
    rows, previous = [], {"fp32": 0.0, "int8": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for cut in CUTS:
            prefix = prefix_model(model, cut)
            timings = {}
            for precision in ("fp32", "int8"):
                path = Path(folder) / f"{cut or 'full'}-{precision}.tflite"
                path.write_bytes(keras_to_tflite(prefix, precision, calibration if precision == "int8" else None))
                timings[precision] = p50_ms(path, threads, min_duration_s)
            block = {p: timings[p] - previous[p] for p in timings}
            rows.append({"up_to": cut or "whole model", "fp32_ms": timings["fp32"], "int8_ms": timings["int8"],
                         "speedup": timings["fp32"] / timings["int8"], "block_fp32_ms": block["fp32"],
                         "block_int8_ms": block["int8"],
                         "block_speedup": block["fp32"] / block["int8"] if block["int8"] > 0 else None})
            previous = timings
            print(f"{rows[-1]['up_to']:16s} fp32 {timings['fp32']:.3f} ms  int8 {timings['int8']:.3f} ms  "
                  f"x{rows[-1]['speedup']:.2f}   block fp32 {block['fp32']:.3f} int8 {block['int8']:.3f}", flush=True)
    return rows


def markdown(rows: list[dict], threads: int, command: str) -> str:
    lines = [f"fp32 vs int8 TFLite (LiteRT, XNNPACK, {threads} threads, batch 1, p50 of the interpreter's invoke), prefixes of the "
             "model cut after each named layer; a block is the difference between consecutive prefixes.", "",
             "| up to | fp32 ms | int8 ms | speedup | block fp32 ms | block int8 ms | block speedup |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        block = f"{row['block_speedup']:.2f}" if row["block_speedup"] else "-"
        lines.append(f"| {row['up_to']} | {row['fp32_ms']:.3f} | {row['int8_ms']:.3f} | {row['speedup']:.2f} | "
                     f"{row['block_fp32_ms']:.3f} | {row['block_int8_ms']:.3f} | {block} |")
    return "\n".join([*lines, "", f"Produced by `{command}`.", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a training output folder (model.keras) or a .keras file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-duration", type=float, default=2.0)
    parser.add_argument("--out", help="JSON result")
    parser.add_argument("--markdown", help="Markdown table")
    args = parser.parse_args()
    rows = profile(args.model, args.threads, args.min_duration)
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "threads": args.threads, "rows": rows}, indent=2))
    if args.markdown:
        command = "python benchmarks/int8_layer_profile.py " + " ".join(sys.argv[1:])
        Path(args.markdown).write_text(markdown(rows, args.threads, command))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
