"""The results store: one SQLite row per measurement, so runs from many devices merge into one table."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from edge_fer.bench.peak import PEAK_VARIANT

DEFAULT_STORE = Path("benchmarks") / "results.sqlite"

COLUMNS = {  # name -> SQL type; 'metrics' and 'versions' hold JSON
    "run_id": "TEXT", "created": "TEXT", "target": "TEXT", "artifact": "TEXT", "artifact_sha256": "TEXT",
    "format": "TEXT", "precision": "TEXT", "status": "TEXT", "reason": "TEXT", "size_bytes": "INTEGER",
    "p50_ms": "REAL", "p90_ms": "REAL", "p99_ms": "REAL", "mean_ms": "REAL", "images_per_s": "REAL",
    "accuracy": "REAL", "macro_f1": "REAL", "agreement": "REAL", "dataset": "TEXT", "synthetic": "INTEGER",
    "variant": "TEXT", "image_size": "INTEGER", "versions": "TEXT", "metrics": "TEXT",
}


def connect(path: str | Path = DEFAULT_STORE) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path))
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    try:
        connection.execute(f"CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
    except BaseException:
        connection.close()
        raise
    return connection


def check(path: str | Path) -> None:
    """Open the store (creating it) and check its table before any measuring: a corrupt, foreign, read-only or
    directory store is a one-line error up front, not results lost after an hour of benchmarks."""
    from edge_fer.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"results store {path} is a folder; give a .sqlite file")
    new = not path.exists()
    connection = None
    try:
        connection = connect(path)
        present = {row[1] for row in connection.execute("PRAGMA table_info(measurements)")}
        # a write that is rolled back: a read-only file or file system fails here, before an hour of measuring
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO measurements (run_id) VALUES ('edge-fer write check')")
        connection.rollback()
        connection.close()
    except (sqlite3.Error, OSError) as error:
        if connection is not None:
            connection.close()
        if new:  # a store this check began (a full disk, a read-only folder) is not left behind empty
            path.unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) else f"{error}; give another --store or remove the file"
        raise UserError(f"results store {path}: {reason}") from None
    missing = set(COLUMNS) - present
    if missing:
        raise UserError(f"results store {path} has a measurements table without {', '.join(sorted(missing))}: "
                        "not an edge-fer store")


def intact(path: str | Path) -> bool:
    """An existing file that is an edge-fer store (read only: nothing is created)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            present = {row[1] for row in connection.execute("PRAGMA table_info(measurements)")}
    except sqlite3.Error:
        return False
    return set(COLUMNS) <= present


def newest(given: str | Path | None) -> Path:
    """The store a reading command uses: the one given, else the newest of benchmarks/results.sqlite and every
    run's runs/*/results.sqlite here (what `edge-fer run` writes), said on stderr so a person knows which."""
    if given:
        return Path(given)
    found = [path for path in [DEFAULT_STORE, *sorted(Path("runs").glob("*/results.sqlite"))] if path.is_file()]
    if not found:
        return DEFAULT_STORE
    chosen = max(found, key=lambda path: path.stat().st_mtime)
    from edge_fer import ui

    ui.err.print(f"store: {chosen} (the newest results store here; --store FILE for another)", soft_wrap=True, markup=False)
    return chosen


def require(path: str | Path) -> None:
    """An existing, valid store, for the commands that only read one (report, pick)."""
    from edge_fer.errors import UserError

    if not Path(path).is_file():
        raise UserError(f"no results store at {path}; run `edge-fer bench` or `edge-fer run` first, or give --store FILE")
    check(path)


def insert(path: str | Path, rows: list[dict]) -> None:
    with contextlib.closing(connect(path)) as connection, connection:  # committed, then closed
        for row in rows:
            values = {name: row.get(name) for name in COLUMNS}
            for name in ("versions", "metrics"):
                values[name] = json.dumps(values[name], default=str) if values[name] is not None else None
            names = ", ".join(values)
            connection.execute(f"INSERT INTO measurements ({names}) VALUES ({', '.join('?' * len(values))})",
                               list(values.values()))


def fetch(path: str | Path = DEFAULT_STORE) -> list[dict]:
    if not Path(path).is_file():
        return []
    with contextlib.closing(connect(path)) as connection, connection:  # committed, then closed
        connection.row_factory = sqlite3.Row
        rows = [dict(row) for row in connection.execute("SELECT * FROM measurements ORDER BY id")]
    for row in rows:
        for name in ("versions", "metrics"):
            row[name] = json.loads(row[name]) if row[name] else None
    return rows


SCORE_FIELDS = ("accuracy", "macro_f1", "dataset", "synthetic")


def latest_per_artifact(rows: list[dict]) -> dict[str, list[dict]]:
    """target -> the newest row for each (artifact path, format): a file exported again to the same path replaces
    the older one. Accuracy belongs to the file's contents, not the run: a newer latency-only row keeps the scores
    of the newest scored row with the same artifact hash."""
    latest: dict[tuple, dict] = {}
    scored: dict[tuple, dict] = {}
    for row in rows:
        if row.get("variant") == PEAK_VARIANT:
            continue  # the host's peak, not an artifact
        latest[(row["target"], row["artifact"], row["format"])] = row
        if row.get("accuracy") is not None:
            scored[content_key(row)] = row
    for row in latest.values():
        source = scored.get(content_key(row))
        if row.get("accuracy") is None and source is not None:
            row.update({field: source[field] for field in SCORE_FIELDS})
            scores = {key: (source.get("metrics") or {}).get(key) for key in ("scores", "scores_valid")}
            row["metrics"] = {**(row.get("metrics") or {}), **scores}
    by_target: dict[str, list[dict]] = {}
    for (target, _, _), row in sorted(latest.items(), key=lambda item: (item[0][0], item[1]["format"] or "")):
        by_target.setdefault(target, []).append(row)
    return by_target


def content_key(row: dict) -> tuple:
    return row["target"], row.get("artifact_sha256") or row["artifact"], row["format"]
