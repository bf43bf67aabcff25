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


def valid_accuracy(row: dict) -> float | None:
    return ((row.get("metrics") or {}).get("scores_valid") or {}).get("accuracy")


def chosen_on(rows: list[dict]) -> str:
    """'valid' where every candidate was scored on the validation split too (the choice does not look at the test
    set), else 'test' (rows benched before validation scoring: bench them again to choose on validation)."""
    return "valid" if rows and all(valid_accuracy(row) is not None for row in rows) else "test"


def ranked(rows: list[dict], split: str) -> list[dict]:
    """Most accurate first on `split` ('valid' or 'test'); ties go to the faster artifact."""
    score = valid_accuracy if split == "valid" else (lambda row: row["accuracy"])
    return sorted(rows, key=lambda row: (score(row), -row["p50_ms"]), reverse=True)


def within_budget(rows: list[dict], max_p50_ms: float) -> tuple[list[dict], str]:
    """The rows whose p50 fits the budget, most accurate first (the choice, then the runner-up, ...), and the split
    that ranked them: validation where every fitting row has it, else test."""
    fitting = [row for row in rows if row["p50_ms"] <= max_p50_ms]
    split = chosen_on(fitting)
    return ranked(fitting, split), split


def paired(row_a: dict, row_b: dict, split: str) -> dict | None:
    """McNemar's test of two rows on the images of `split` ('valid' or 'test'), None where either row lacks the
    per-image record (rows benched before it was kept) or they were scored on different images."""
    from edge_fer.evaluate import mcnemar, unpack_correct

    key = "scores_valid" if split == "valid" else "scores"
    a, b = ((row.get("metrics") or {}).get(key) or {} for row in (row_a, row_b))
    if not a.get("correct_bits") or not b.get("correct_bits") or a.get("count") != b.get("count") \
            or row_a.get("dataset") != row_b.get("dataset"):
        return None
    test = mcnemar(unpack_correct(a["correct_bits"], a["count"]), unpack_correct(b["correct_bits"], b["count"]))
    return {**test, "split": split, "difference": a["accuracy"] - b["accuracy"]}


def paired_verdict(test: dict | None) -> str:
    if test is None:
        return "no per-image record: bench again to test"
    return "better (p < 0.05)" if test["p"] < 0.05 and test["difference"] > 0 else (
        "worse (p < 0.05)" if test["p"] < 0.05 else "within noise")


def summary(row: dict, split: str) -> dict:
    """What a person needs to trust the choice: both accuracies with their 95% intervals, the p50 with the spread
    of its rounds, and which split chose it."""
    from edge_fer.evaluate import wilson_interval

    metrics = row.get("metrics") or {}
    test, valid = metrics.get("scores") or {}, metrics.get("scores_valid") or {}
    rounds = (metrics.get("single_stream") or {}).get("round_p50_ms") or []
    interval = lambda scores: wilson_interval(scores.get("accuracy"), scores.get("count"))  # noqa: E731
    return {"artifact": row["artifact"], "format": row["format"], "chosen_on": split,
            "valid_accuracy": valid.get("accuracy"), "valid_interval_95": interval(valid),
            "test_accuracy": row["accuracy"], "test_interval_95": interval(test), "macro_f1": row.get("macro_f1"),
            "p50_ms": row["p50_ms"], "round_p50_ms": [min(rounds), max(rounds)] if len(rounds) > 1 else None,
            "p90_ms": row.get("p90_ms"), "size_bytes": row.get("size_bytes"), "dataset": row.get("dataset"),
            "image_size": row.get("image_size"), "variant": row.get("variant"), "run_id": row.get("run_id"),
            "created": row.get("created")}


def against_runner_up(chosen: dict, second: dict | None, split: str) -> dict | None:
    """The choice against the next candidate, paired on the split that chose (is the margin more than noise?)."""
    if second is None:
        return None
    test = paired(chosen, second, split)
    return {"artifact": second["artifact"], "format": second["format"], "p50_ms": second["p50_ms"],
            "split": split, "mcnemar": test, "verdict": paired_verdict(test)}
