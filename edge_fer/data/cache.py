"""On-disk cache of decoded datasets: one uncompressed .npz per (adapter, root, label mode, size, options).

Written to a temporary name and renamed when complete, so an interrupted or failed load leaves nothing.
Loaded with allow_pickle=False: the cache never runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from edge_fer.data.base import Split

FIELDS = ("images", "labels", "files", "soft_labels", "subjects")


def cache_dir() -> Path:
    base = os.environ.get("EDGE_FER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edge_fer")
    return Path(base) / "datasets"


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cache_path(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{key}.npz"


def save(path: Path, splits: dict[str, Split], meta: dict) -> None:
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for split_name, split in splits.items():
        for field in FIELDS:
            value = getattr(split, field)
            if value is not None:
                arrays[f"{split_name}.{field}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path) -> tuple[dict[str, Split], dict] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            splits = {}
            for split_name in meta["splits"]:
                values = {f: archive[f"{split_name}.{f}"] for f in FIELDS if f"{split_name}.{f}" in archive.files}
                splits[split_name] = Split(**values)
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache entry: decode again and overwrite it
    return splits, meta
