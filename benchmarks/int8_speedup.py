"""int8 vs fp32 TFLite speed-up at batch 1, repeated, with `edge-fer bench` on a target.

Each round benchmarks the fp32 file and then the int8 file in one `edge-fer bench` call (SingleStream p50, only
`Runner.run` timed) and takes the ratio of their p50s. Rounds are repeated per thread count because a shared
machine's noise can move one file's p50 without the other's; the table shows every round and the median.

    python benchmarks/int8_speedup.py FP32.tflite INT8.tflite [--target host-cpu] [--threads 1 2] [--rounds 3]
        [--min-duration 5] [--bar 2.5] [--store FILE] [--out FILE.json] [--markdown FILE.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import edge_fer  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edge_fer.bench.store import DEFAULT_STORE
from edge_fer.errors import UserError, run_script


def measure_rounds(fp32: str, int8: str, target: str, threads: int, rounds: int, min_duration_s: float,
                   store_path: str) -> list[dict]:
    from edge_fer.bench.runner import BenchSettings, bench

    settings = BenchSettings(threads=threads, min_duration_s=min_duration_s, store=store_path)
    measured = []
    for number in range(1, rounds + 1):
        fp32_row, int8_row = bench([fp32, int8], target, settings)
        failed = [row for row in (fp32_row, int8_row) if row["status"] != "passed"]
        if failed:
            raise RuntimeError(f"{failed[0]['artifact']}: {failed[0].get('reason', failed[0]['status'])}")
        measured.append({"threads": threads, "round": number, "fp32_p50_ms": fp32_row["p50_ms"],
                         "int8_p50_ms": int8_row["p50_ms"], "speedup": fp32_row["p50_ms"] / int8_row["p50_ms"]})
        print(f"threads {threads} round {number}: fp32 {fp32_row['p50_ms']:.3f} ms  int8 {int8_row['p50_ms']:.3f} ms"
              f"  x{measured[-1]['speedup']:.2f}", flush=True)
    return measured


def summarize(rounds: list[dict], bar: float) -> list[dict]:
    summary = []
    for threads in sorted({row["threads"] for row in rounds}):
        speedups = [row["speedup"] for row in rounds if row["threads"] == threads]
        summary.append({"threads": threads, "rounds": len(speedups), "median_speedup": statistics.median(speedups),
                        "min_speedup": min(speedups), "max_speedup": max(speedups),
                        "rounds_at_bar": sum(speedup >= bar for speedup in speedups)})
    return summary


def markdown(rounds: list[dict], summary: list[dict], bar: float, target: str, command: str) -> str:
    lines = [f"int8 vs fp32 TFLite on `{target}`, batch 1, p50 of `Runner.run` (SingleStream), one row per round.", "",
             "| threads | round | fp32 p50 ms | int8 p50 ms | speed-up |", "|---|---|---|---|---|"]
    lines += [f"| {row['threads']} | {row['round']} | {row['fp32_p50_ms']:.3f} | {row['int8_p50_ms']:.3f} | "
              f"{row['speedup']:.2f} |" for row in rounds]
    lines += ["", f"| threads | median speed-up | min | max | rounds at or above {bar}× |", "|---|---|---|---|---|"]
    lines += [f"| {row['threads']} | {row['median_speedup']:.2f} | {row['min_speedup']:.2f} | {row['max_speedup']:.2f} | "
              f"{row['rounds_at_bar']} of {row['rounds']} |" for row in summary]
    return "\n".join([*lines, "", f"Produced by `{command}`.", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", help="the fp32 .tflite file")
    parser.add_argument("int8", help="the int8 .tflite file of the same model")
    parser.add_argument("--target", default="host-cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-duration", type=float, default=5.0)
    parser.add_argument("--bar", type=float, default=2.5, help="the speed-up to count rounds against")
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--out", help="JSON result")
    parser.add_argument("--markdown", help="Markdown table")
    args = parser.parse_args()
    for path in (args.fp32, args.int8):
        if not Path(path).is_file():
            print(f"error: {path} does not exist; pass the fp32 and int8 .tflite files of one model", file=sys.stderr)
            return 2
    try:
        rounds = [row for threads in args.threads for row in
                  measure_rounds(args.fp32, args.int8, args.target, threads, args.rounds, args.min_duration, args.store)]
    except (RuntimeError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    summary = summarize(rounds, args.bar)
    for row in summary:
        print(f"threads {row['threads']}: median x{row['median_speedup']:.2f} (min {row['min_speedup']:.2f}, "
              f"max {row['max_speedup']:.2f}), {row['rounds_at_bar']} of {row['rounds']} rounds at or above {args.bar}")
    if args.out:
        Path(args.out).write_text(json.dumps({"fp32": args.fp32, "int8": args.int8, "target": args.target,
                                              "bar": args.bar, "rounds": rounds, "summary": summary}, indent=2))
    if args.markdown:
        command = "python benchmarks/int8_speedup.py " + " ".join(sys.argv[1:])
        Path(args.markdown).write_text(markdown(rounds, summary, args.bar, args.target, command))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
