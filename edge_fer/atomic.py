"""Every file edge-fer writes is written whole or not at all: to `.partial-<name>` beside it, then renamed. A reader
(or a rerun after Ctrl-C, a full disk, kill -9) sees the old file or the new one, never half of one. Runs on the
device side too (Python 3.8+, standard library only)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from edge_fer.errors import UserError

PARTIAL_PREFIX = ".partial-"  # a file still being written; never an output (pipeline manifests skip it)


def partial_path(path: Path, unique: bool = False) -> Path:
    """unique: a name of this process's own, for files several processes may write at once (a shared cache)."""
    return path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{path.name}" if unique else f"{PARTIAL_PREFIX}{path.name}")


def is_partial(path: Path) -> bool:
    return path.name.startswith(PARTIAL_PREFIX)


def check_replaceable(path: Path) -> None:
    """Only a regular file (or nothing) is replaced: not a folder, a symbolic link, a device, a pipe or a socket."""
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path} is a folder; give a file name")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "not a regular file (a device, a pipe or a socket)"
        raise UserError(f"{path} is {kind}: edge-fer writes only regular files it can replace; give another path")


@contextlib.contextmanager
def replacing(path: str | Path, unique: bool = False):
    """Yield the temporary path to write (by any library: Keras, cv2, trtexec); on success it replaces `path`, on
    any failure it is removed. An OSError becomes one line naming the file."""
    path = Path(path)
    check_replaceable(path)
    temporary = partial_path(path, unique)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, payload: bytes) -> None:
    with replacing(path) as temporary:
        temporary.write_bytes(payload)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, payload, indent: int | None = 2) -> None:
    write_text(path, json.dumps(payload, indent=indent, default=str))


def read_json(path: str | Path, default):
    """A JSON file this program wrote, or `default` where it is missing or unreadable (a report or summary that
    shows what is there; a reader that must not guess uses json.loads and its own one-line error)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default
