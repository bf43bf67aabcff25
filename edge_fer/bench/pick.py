"""`edge-fer pick`: the most accurate artifact a target runs within a latency budget, from the results store."""

from __future__ import annotations

from pathlib import Path

from edge_fer.bench import store
from edge_fer.errors import UserError
from edge_fer.status import PASSED


def candidates(store_path: str | Path, target: str, formats: list[str] | None = None, dataset: str | None = None) -> list[dict]:
    """The newest passed, scored row per artifact on `target` (optionally of some formats only). Accuracies
    compare only on one dataset, so a store holding several needs `dataset`."""
    store.require(store_path)
    by_target = store.latest_per_artifact(store.fetch(store_path))
    if target not in by_target:
        known = ", ".join(sorted(by_target)) or "none"
        raise UserError(f"the store has no rows for target {target!r} (it has: {known})")
    rows = [row for row in by_target[target] if row["status"] == PASSED
            and row.get("p50_ms") is not None and row.get("accuracy") is not None]
    rows = [row for row in rows if (not formats or row["format"] in formats) and (not dataset or row["dataset"] == dataset)]
    datasets = sorted({str(row["dataset"]) for row in rows})
    if len(datasets) > 1:
        raise UserError(f"the rows on {target} are scored on several datasets ({', '.join(datasets)}); pass --dataset NAME")
    return rows


def pick(rows: list[dict], max_p50_ms: float) -> dict | None:
    """Most accurate under the budget; ties go to the faster artifact."""
    fitting = [row for row in rows if row["p50_ms"] <= max_p50_ms]
    return max(fitting, key=lambda row: (row["accuracy"], -row["p50_ms"]), default=None)
