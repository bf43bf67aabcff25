"""The one structure every dataset adapter returns, and the adapter contract."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_fer.errors import DataError
from edge_fer.registry import Registry

ROOT_HINT = "pass --root PATH (edge-fer run: --set data.root=PATH)"
OPTION_KINDS = {int: "an integer", float: "a number", str: "a string", list: "a list of names", dict: "a table of name = path"}


def typed_option(adapter: str, options: dict, key: str, default, kind: type, low=None, high=None):
    """One adapter option of the right type and range, or a one-line DataError naming the option."""
    value = options.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    good = isinstance(value, kind) and not isinstance(value, bool)
    if good and kind is float:
        good = math.isfinite(value)
    if good and kind is list:
        good = all(isinstance(item, str) and item for item in value)
    if good and kind is dict:
        good = all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if not good:
        raise DataError(f"{adapter} option {key} must be {OPTION_KINDS[kind]}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise DataError(f"{adapter} option {key} must be in {low}..{high}, got {value!r}")
    return value


@dataclass
class Split:
    """One split: uint8 images (N, H, W, C), integer labels, optional soft labels (what training fits), subject IDs
    and votes (the annotators' distribution over the classes, which scoring compares predictions with)."""

    images: np.ndarray
    labels: np.ndarray
    files: np.ndarray
    soft_labels: np.ndarray | None = None
    subjects: np.ndarray | None = None
    votes: np.ndarray | None = None

    def __post_init__(self):
        count = len(self.images)
        for name in ("labels", "files", "soft_labels", "subjects", "votes"):
            value = getattr(self, name)
            if value is not None and len(value) != count:
                raise ValueError(f"split field {name} has {len(value)} rows, images has {count}")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> "Split":
        pick = lambda value: None if value is None else value[index]  # noqa: E731
        return Split(self.images[index], self.labels[index], self.files[index], pick(self.soft_labels),
                     pick(self.subjects), pick(self.votes))


@dataclass
class FerDataset:
    name: str
    classes: tuple[str, ...]
    label_mode: str
    splits: dict[str, Split]
    synthetic: bool = False
    root: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        first = next(iter(self.splits.values()))
        return tuple(first.images.shape[1:])

    def class_counts(self, split: str) -> dict[str, int]:
        counts = np.bincount(self.splits[split].labels, minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    @property
    def display_name(self) -> str:
        return f"{self.name} (SYNTHETIC data)" if self.synthetic else self.name

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "synthetic": self.synthetic,
            "root": self.root,
            "label_mode": self.label_mode,
            "classes": list(self.classes),
            "image_shape": list(self.image_shape),
            "splits": {
                name: {"count": len(split), "class_counts": self.class_counts(name)}
                for name, split in self.splits.items()
            },
        }


class Adapter:
    """Reads one dataset layout. Subclasses set the class attributes and implement `read`."""

    name: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    label_modes: ClassVar[tuple[str, ...]] = ("hard",)  # the first is the default
    training_only_modes: ClassVar[tuple[str, ...]] = ()  # label modes that train but are scored on the default
    synthetic: ClassVar[bool] = False
    needs_root: ClassVar[bool] = True
    root_may_be_file: ClassVar[bool] = False  # fer2013 takes its CSV file itself
    cacheable: ClassVar[bool] = True
    version: ClassVar[int] = 1  # bump when parsing changes, to invalidate caches

    def __init__(self, root: str | Path | None, label_mode: str | None = None, image_size: int | None = None, **options):
        if self.needs_root:
            if root is None:
                raise DataError(f"dataset {self.name!r} needs its folder: {ROOT_HINT}")
            root = Path(root).expanduser().resolve()
            if not root.exists():
                raise DataError(f"dataset root does not exist; {ROOT_HINT}", root)
            if not root.is_dir() and not self.root_may_be_file:
                raise DataError(f"dataset root is not a folder; {ROOT_HINT}", root)
        self.root = root
        self.label_mode = label_mode or self.label_modes[0]
        if self.label_mode not in self.label_modes:
            raise DataError(
                f"label mode {self.label_mode!r} is not one of {', '.join(self.label_modes)} for {self.name}"
            )
        if image_size is not None and image_size < 8:
            raise DataError(f"image size {image_size} is too small; use 8 pixels or more")
        self.image_size = image_size
        self.options = self.check_options(options)

    @classmethod
    def scoring_mode(cls, label_mode: str | None) -> str:
        """The label mode a model trained with `label_mode` is scored on (soft labels score on the official hard set)."""
        mode = label_mode or cls.label_modes[0]
        return cls.label_modes[0] if mode in cls.training_only_modes else mode

    def check_options(self, options: dict) -> dict:
        if options:
            raise DataError(f"dataset {self.name!r} takes no options, got {', '.join(sorted(options))}")
        return {}

    def fingerprint(self) -> list:
        """Cheap facts about the files on disk that change when the dataset changes."""
        return []

    def read(self) -> dict[str, Split]:
        raise NotImplementedError


def stat_fingerprint(*paths: Path) -> list:
    facts = []
    for path in paths:
        if path.exists():
            stat = path.stat()
            facts.append([str(path), stat.st_size, stat.st_mtime_ns])
        else:
            facts.append([str(path), None, None])
    return facts


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"missing {what}", path)
    return path


def require_nonempty(splits: dict[str, Split], where) -> dict[str, Split]:
    for name, split in splits.items():
        if len(split) == 0:
            raise DataError(f"split {name!r} has no images", where)
    return splits


DATASETS: Registry[type[Adapter]] = Registry("dataset")


def register_dataset(adapter: type[Adapter]) -> type[Adapter]:
    """Adapters register themselves by name (`@register_dataset` on the class); edge_fer.data imports them all."""
    return DATASETS.register(adapter.name)(adapter)
