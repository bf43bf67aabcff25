"""The closing tables of `edge-fer run`: one line per stage, then one line per artifact with its export status,
accuracy, p50 latency and size. Both fit 100 columns."""

from __future__ import annotations

from pathlib import Path

from edge_fer import atomic
from edge_fer.bench.peak import PEAK_VARIANT
from edge_fer.pipeline.stages import get_stage
from edge_fer.status import PASSED

WIDTH = 100


def stage_rows(summary: list[dict]) -> list[list]:
    """stage, status, seconds and its note (the JSON summary stays in `--json` and the manifests)."""
    return [[s["stage"], s["status"], s.get("seconds"), get_stage(s["stage"]).note(s)] for s in summary]


def artifact_rows(run_folder: Path, summary: list[dict] | None = None) -> list[list]:
    """artifact, export status, accuracy, p50 ms, size MB, read from the run's own stage files, so stages
    cached or skipped in this invocation still show their numbers. A p50 timed on a busy host ends in '*'."""
    exported = atomic.read_json(run_folder / "export" / "export.json", {}).get("results", [])
    evaluated = atomic.read_json(run_folder / "evaluate" / "evaluate.json", {})
    first_mode = next((scores for scores in evaluated.values() if isinstance(scores, dict)), {})
    measured = {row["format"]: row for row in atomic.read_json(run_folder / "bench" / "bench.json", [])
                if isinstance(row, dict) and row.get("status") == PASSED and row.get("variant") != PEAK_VARIANT}
    rows = []
    for result in exported:
        name = result["format"]
        accuracy = (first_mode.get(name) or {}).get("accuracy")
        bench_row = measured.get(name, {})
        busy = ((bench_row.get("metrics") or {}).get("host") or {}).get("busy")
        size = result.get("size_bytes")
        p50 = milliseconds(bench_row.get("p50_ms"))
        rows.append([name, result["status"], None if accuracy is None else f"{accuracy:.4f}",
                     f"{p50}*" if p50 and busy else p50, round(size / 1e6, 2) if size else None])
    return rows


def busy_footnote(rows: list[list]) -> str | None:
    if any(isinstance(row[3], str) and row[3].endswith("*") for row in rows):
        return "* timed while other processes kept the CPU busy: an upper bound (see the report's other-load column)"
    return None


def milliseconds(value) -> str | None:
    return None if value is None else f"{value:.3f}"
