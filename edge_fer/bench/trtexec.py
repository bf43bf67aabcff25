"""Parse trtexec's performance output: the summary of TensorRT 8.2+ ("Latency: min = ... ms, ...") and the
legacy "Host Latency" block of TensorRT 7-8.0 ("min: X ms (end to end Y ms)"). Values absent from a log are None."""

from __future__ import annotations

import re
from pathlib import Path

STAT_KEYS = ("min", "max", "mean", "median", "p90", "p95", "p99")
SUMMARY_BLOCKS = {"Latency": "latency_ms", "Enqueue Time": "enqueue_ms", "H2D Latency": "h2d_ms",
                  "GPU Compute Time": "gpu_compute_ms", "D2H Latency": "d2h_ms"}
LEGACY_BLOCKS = {"Host Latency": ("latency_ms", "end_to_end_ms"), "GPU Compute": ("gpu_compute_ms", None),
                 "Enqueue Time": ("enqueue_ms", None)}
LOG_PREFIX = re.compile(r"^\[[^\]]*\]\s*\[[A-Z]\]\s?")
NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
SUMMARY_ITEM = re.compile(rf"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*{NUMBER}\s*ms")
LEGACY_ITEM = re.compile(rf"^(min|max|mean|median|percentile):\s*{NUMBER}\s*ms(?:\s*at\s*(\d+(?:\.\d+)?)%)?"
                         rf"(?:\s*\(end to end\s*{NUMBER}\s*ms(?:\s*at\s*\d+(?:\.\d+)?%)?\))?")


def empty_stats() -> dict:
    return dict.fromkeys(STAT_KEYS)


def stat_key(name: str, percentile: str | None) -> str | None:
    if name.startswith("percentile"):
        key = f"p{float(percentile):g}"
        return key if key in STAT_KEYS else None
    return name


def parse_trtexec(text: str) -> dict:
    result = {"throughput_qps": None, **{key: empty_stats() for key in SUMMARY_BLOCKS.values()},
              "end_to_end_ms": empty_stats(), "total_host_walltime_s": None, "total_gpu_compute_s": None,
              "warnings": []}
    legacy_block = None
    for raw in text.splitlines():
        level = re.match(r"^\[[^\]]*\]\s*\[([A-Z])\]", raw)
        line = LOG_PREFIX.sub("", raw).strip()
        if level and level.group(1) == "W":
            result["warnings"].append(line)
        if match := re.match(rf"^[Tt]hroughput:\s*{NUMBER}\s*qps", line):
            result["throughput_qps"] = float(match.group(1))
            legacy_block = None
        elif match := re.match(rf"^Total Host Walltime:\s*{NUMBER}\s*s", line):
            result["total_host_walltime_s"] = float(match.group(1))
        elif match := re.match(rf"^Total GPU Compute Time:\s*{NUMBER}\s*s", line):
            result["total_gpu_compute_s"] = float(match.group(1))
        elif (head := line.split(":", 1)[0]) in SUMMARY_BLOCKS and "=" in line:
            stats = result[SUMMARY_BLOCKS[head]]
            for name, percentile, value in SUMMARY_ITEM.findall(line):
                if key := stat_key(name, percentile):
                    stats[key] = float(value)
        elif line in LEGACY_BLOCKS:
            legacy_block = LEGACY_BLOCKS[line]
        elif legacy_block and (match := LEGACY_ITEM.match(line)):
            name, value, percentile, end_to_end = match.groups()
            key = stat_key(name, percentile or "99")
            if key:
                result[legacy_block[0]][key] = float(value)
                if legacy_block[1] and end_to_end is not None:
                    result[legacy_block[1]][key] = float(end_to_end)
    result["problems"] = impossible_figures(result)
    return result


def trtexec_measurement(parsed: dict) -> dict:
    """A row's measurement from trtexec's parsed log: its latency statistics and rate as our SingleStream fields,
    or the error that makes the row failed (no summary, or figures no real run prints)."""
    latency = parsed["latency_ms"]
    if latency["median"] is None:
        return {"error": "trtexec exited 0 but printed no latency summary"}
    if parsed["problems"]:
        return {"error": f"trtexec printed impossible figures: {', '.join(parsed['problems'][:3])}"}
    return {"trtexec": parsed, "timed_by": "trtexec",
            "single_stream": {"p50_ms": latency["median"], "p90_ms": latency["p90"], "p99_ms": latency["p99"],
                              "mean_ms": latency["mean"], "qps": parsed["throughput_qps"]}}


def impossible_figures(result: dict) -> list[str]:
    """Figures no real run prints: a negative or non-finite time or rate."""
    import math

    found = [("throughput_qps", result["throughput_qps"])] + [
        (f"{block}.{key}", value) for block in (*SUMMARY_BLOCKS.values(), "end_to_end_ms") for key, value in result[block].items()]
    found += [(name, result[name]) for name in ("total_host_walltime_s", "total_gpu_compute_s")]
    return [f"{name} = {value:g}" for name, value in found if value is not None and (value < 0 or not math.isfinite(value))]


def parse_trtexec_file(path: str | Path) -> dict:
    from edge_fer.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"trtexec log {path} does not exist")
    parsed = parse_trtexec(path.read_text(errors="replace"))
    if parsed["throughput_qps"] is None and all(v is None for v in parsed["latency_ms"].values()):
        raise UserError(f"{path}: no trtexec performance summary found (expected 'Throughput: ... qps' and latency lines)")
    if parsed["problems"]:
        raise UserError(f"{path}: figures no trtexec run prints ({', '.join(parsed['problems'][:3])}): not a real log")
    return parsed
