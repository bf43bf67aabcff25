"""Console output: results go to stdout, progress and logs to stderr (so --json stays clean)."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Piped output (logs, CI) gets wide tables instead of rich's 80-column default.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def narrow(console: Console, width: int) -> Console:
    """The same stream at most `width` columns wide (a closing table that fits a normal terminal)."""
    return Console(file=console.file, highlight=False, width=min(console.width, width))


def progress(transient: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
        disable=not err.is_terminal and not _force_progress(),
    )


def _force_progress() -> bool:
    import os

    return os.environ.get("EDGE_FER_PROGRESS") == "1"


def log(message: str) -> None:
    err.print(message, markup=False, soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def print_json(payload) -> None:
    """Strict JSON: an infinite or NaN number (an absurd log, a failed measurement) is written as null."""
    sys.stdout.write(json.dumps(_finite(payload), indent=2, sort_keys=False, allow_nan=False) + "\n")


def _finite(value):
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def table(title: str, columns: list[str], rows: list[list], caption: str | None = None) -> Table:
    result = Table(title=title, caption=caption)
    # the first column names the row: on a narrow terminal the numbers wrap, the names stay whole; other cells
    # fold rather than end in an ellipsis, so no value is hidden
    name_width = min(40, max([len(_cell(row[0])) for row in rows if row] + [len(columns[0])]))
    for column in columns:
        if column == columns[0]:
            result.add_column(column, justify="left", no_wrap=True, min_width=name_width)
        else:
            result.add_column(column, justify="right", overflow="fold")
    for row in rows:
        result.add_row(*[_cell(value) for value in row])
    return result


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))
