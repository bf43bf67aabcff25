"""On-disk cache of decoded datasets: one uncompressed .npz per (adapter, root, label mode, size, options).

Written to a temporary name and renamed when complete, so an interrupted or failed load leaves nothing.
Loaded with allow_pickle=False: the cache never runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from edge_fer import atomic
from edge_fer.data.base import Split

FIELDS = ("images", "labels", "files", "soft_labels", "subjects", "votes")


def cache_dir() -> Path | None:
    """EDGE_FER_CACHE, else ~/.cache/edge_fer; None (no cache) where the home folder does not exist, so a HOME
    that points nowhere is never created."""
    if os.environ.get("EDGE_FER_CACHE"):
        return Path(os.environ["EDGE_FER_CACHE"]) / "datasets"
    home = Path(os.path.expanduser("~"))
    return home / ".cache" / "edge_fer" / "datasets" if home.is_dir() else None


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cache_path(name: str, key: str) -> Path | None:
    folder = cache_dir()
    return folder / f"{name}-{key}.npz" if folder is not None else None


def save(path: Path | None, splits: dict[str, Split], meta: dict) -> None:
    if path is None:
        return
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for split_name, split in splits.items():
        for field in FIELDS:
            value = getattr(split, field)
            if value is not None:
                arrays[f"{split_name}.{field}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path, unique=True) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, **arrays)


def load(path: Path | None) -> tuple[dict[str, Split], dict] | None:
    """The cached splits, or None (decode again and overwrite) where the entry is missing, unreadable, or holds
    what no decode writes: a label outside the classes, a vote distribution that is not one."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            splits = {}
            for split_name in meta["splits"]:
                values = {f: archive[f"{split_name}.{f}"] for f in FIELDS if f"{split_name}.{f}" in archive.files}
                splits[split_name] = Split(**values)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable cache entry: decode again and overwrite it
    if not all(plausible(split, len(meta.get("classes") or [])) for split in splits.values()):
        return None
    return splits, meta


def plausible(split: Split, classes: int) -> bool:
    labels = np.asarray(split.labels)
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= classes):
        return False
    if split.images.dtype != np.uint8 or split.images.ndim != 4:
        return False
    return all(distribution is None or is_distribution(distribution, classes)
               for distribution in (split.soft_labels, split.votes))


def is_distribution(rows, classes: int) -> bool:
    rows = np.asarray(rows, dtype=np.float64)
    return rows.ndim == 2 and rows.shape[1] == classes and bool(np.all(np.isfinite(rows))) and rows.min() >= 0 \
        and np.abs(rows.sum(axis=1) - 1).max() <= 1e-3
