"""The closing tables of `edge-fer run`: one line per stage, then one line per artifact with its export status,
accuracy, p50 latency and size. Both fit 100 columns."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from edge_fer.bench.peak import PEAK_VARIANT

WIDTH = 100


def stage_note(stage: dict) -> str:
    """A short human line for a stage's summary (the JSON summary stays in `--json` and the manifests)."""
    name = stage["stage"]
    if name in ("train", "qat") and "accuracy" in stage:
        scratch = ", from scratch" if name == "train" and stage.get("pretrained") is False else ""
        return f"test accuracy {stage['accuracy']:.4f}{scratch}"
    if name == "export" and "formats" in stage:
        return ", ".join(f"{count} {status}" for status, count in Counter(stage["formats"].values()).items())
    if name == "evaluate":
        scores = {k: v for k, v in stage.items() if k not in ("stage", "status", "seconds") and isinstance(v, float)}
        if scores:
            best = max(scores, key=scores.get)
            return f"{len(scores)} models, best {scores[best]:.4f} ({best})"
    if name == "bench":
        rows = {k: v for k, v in stage.items() if isinstance(v, dict) and not k.startswith("peak ")}
        peaks = sum(1 for k in stage if k.startswith("peak "))
        if rows:
            passed = sum(1 for v in rows.values() if v.get("status") == "passed")
            return f"{passed} of {len(rows)} artifacts measured" + (", host peak" if peaks else "")
    if name == "report" and stage.get("report"):
        return str(stage["report"])
    if name == "data":
        sizes = stage.get("sizes")
        if isinstance(sizes, dict):
            return ", ".join(f"{k} {v}" for k, v in sizes.items())[:60]
    return ""


def stage_rows(summary: list[dict]) -> list[list]:
    return [[s["stage"], s["status"], s.get("seconds"), stage_note(s)] for s in summary]


def artifact_rows(run_folder: Path, summary: list[dict] | None = None) -> list[list]:
    """artifact, export status, accuracy, p50 ms, size MB, read from the run's own stage files, so stages
    cached or skipped in this invocation still show their numbers. A p50 timed on a busy host ends in '*'."""
    exported = read_json(run_folder / "export" / "export.json", {}).get("results", [])
    evaluated = read_json(run_folder / "evaluate" / "evaluate.json", {})
    first_mode = next((scores for scores in evaluated.values() if isinstance(scores, dict)), {})
    measured = {row["format"]: row for row in read_json(run_folder / "bench" / "bench.json", [])
                if isinstance(row, dict) and row.get("status") == "passed" and row.get("variant") != PEAK_VARIANT}
    rows = []
    for result in exported:
        name = result["format"]
        accuracy = (first_mode.get(name) or {}).get("accuracy")
        bench_row = measured.get(name, {})
        busy = ((bench_row.get("metrics") or {}).get("host") or {}).get("busy")
        size = result.get("size_bytes")
        p50 = milliseconds(bench_row.get("p50_ms"))
        rows.append([name, result["status"], None if accuracy is None else round(accuracy, 4),
                     f"{p50}*" if p50 and busy else p50, round(size / 1e6, 2) if size else None])
    return rows


def busy_footnote(rows: list[list]) -> str | None:
    if any(isinstance(row[3], str) and row[3].endswith("*") for row in rows):
        return "* timed while other processes kept the CPU busy: an upper bound (see the report's other-load column)"
    return None


def read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def milliseconds(value) -> str | None:
    return None if value is None else f"{value:.3f}"
