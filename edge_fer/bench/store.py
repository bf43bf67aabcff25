"""The results store: one SQLite row per measurement, so runs from many devices merge into one table."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

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
    connection.execute(f"CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
    return connection


def insert(path: str | Path, rows: list[dict]) -> None:
    with connect(path) as connection:
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
    with connect(path) as connection:
        connection.row_factory = sqlite3.Row
        rows = [dict(row) for row in connection.execute("SELECT * FROM measurements ORDER BY id")]
    for row in rows:
        for name in ("versions", "metrics"):
            row[name] = json.loads(row[name]) if row[name] else None
    return rows
