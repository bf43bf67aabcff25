"""Dataset adapters, registered by name; `load_dataset` is the one way to get a dataset."""

from __future__ import annotations

from pathlib import Path

from edge_fer.data import cache
from edge_fer.data.base import DATASETS, Adapter, FerDataset, Split, register_dataset


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_adapter(name: str) -> type[Adapter]:
    return DATASETS.get(name)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    label_mode: str | None = None,
    image_size: int | None = None,
    use_cache: bool = True,
    **options,
) -> FerDataset:
    """Load a dataset by adapter name, from the decode cache where it is fresh."""
    adapter = DATASETS.get(name)(root, label_mode=label_mode, image_size=image_size, **options)
    meta = {
        "adapter": name,
        "adapter_version": adapter.version,
        "root": str(adapter.root) if adapter.root else None,
        "label_mode": adapter.label_mode,
        "image_size": image_size,
        "options": adapter.options,
        "classes": list(adapter.classes),
    }
    splits = None
    if use_cache and adapter.cacheable:
        key = cache.cache_key({**meta, "fingerprint": adapter.fingerprint()})
        path = cache.cache_path(name, key)
        cached = cache.load(path)
        if cached is not None:
            splits = cached[0]
    if splits is None:
        splits = adapter.read()
        if use_cache and adapter.cacheable:
            cache.save(path, splits, {**meta, "splits": list(splits)})
    return FerDataset(
        name=name,
        classes=tuple(adapter.classes),
        label_mode=adapter.label_mode,
        splits=splits,
        synthetic=adapter.synthetic,
        root=meta["root"],
        options={**adapter.options, "image_size": image_size},
    )


# Registration happens on import of each adapter module.
from edge_fer.data import ckplus, fer2013, ferplus, imagefolder, rafdb, synthetic  # noqa: E402,F401

__all__ = ["FerDataset", "Split", "Adapter", "load_dataset", "list_datasets", "register_dataset", "get_adapter"]
