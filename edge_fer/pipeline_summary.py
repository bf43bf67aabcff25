"""The closing tables of `edge-fer run`: one line per stage, then one line per artifact with its export status,
accuracy, p50 latency and size. Both fit 100 columns."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

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
        rows = {k: v for k, v in stage.items() if isinstance(v, dict)}
        if rows:
            passed = sum(1 for v in rows.values() if v.get("status") == "passed")
            return f"{passed} of {len(rows)} artifacts measured"
    if name == "report" and stage.get("report"):
        return str(stage["report"])
    if name == "data":
        sizes = stage.get("sizes")
        if isinstance(sizes, dict):
            return ", ".join(f"{k} {v}" for k, v in sizes.items())[:60]
    return ""


def stage_rows(summary: list[dict]) -> list[list]:
    return [[s["stage"], s["status"], s.get("seconds"), stage_note(s)] for s in summary]


def artifact_rows(run_folder: Path, summary: list[dict]) -> list[list]:
    """artifact, export status, accuracy (evaluate), p50 ms (bench), size MB, from the run's own files."""
    by_stage = {s["stage"]: s for s in summary}
    export_file = run_folder / "export" / "export.json"
    if not export_file.is_file():
        return []
    exported = json.loads(export_file.read_text()).get("results", [])
    accuracy = by_stage.get("evaluate", {})
    bench = by_stage.get("bench", {})
    rows = []
    for result in exported:
        name = result["format"]
        measured = bench.get(name) if isinstance(bench.get(name), dict) else {}
        size = result.get("size_bytes")
        rows.append([name, result["status"], accuracy.get(name), milliseconds(measured.get("p50_ms")),
                     round(size / 1e6, 2) if size else None])
    return rows


def milliseconds(value) -> str | None:
    return None if value is None else f"{value:.3f}"
