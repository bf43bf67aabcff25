"""Kaggle's fer2013.csv: emotion, pixels (2304 space-separated values), Usage."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge_fer.data.base import Adapter, Split, register_dataset, require_file, require_nonempty, stat_fingerprint
from edge_fer.errors import DataError

CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "valid", "PrivateTest": "test"}
SIDE = 48


@register_dataset
class Fer2013(Adapter):
    name = "fer2013"
    classes = CLASSES
    root_may_be_file = True

    @property
    def csv_path(self) -> Path:
        return self.root if self.root.is_file() else self.root / "fer2013.csv"

    def fingerprint(self) -> list:
        return stat_fingerprint(self.csv_path)

    def read(self) -> dict[str, Split]:
        path = require_file(self.csv_path, "label file fer2013.csv")
        collected = {split: ([], []) for split in USAGE_TO_SPLIT.values()}
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.reader(stream)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
                raise DataError(f"expected the header 'emotion,pixels,Usage', got {header}", path, 1)
            for line_number, row in enumerate(reader, start=2):
                if not row:
                    continue
                label, pixels, split = parse_row(row, path, line_number)
                collected[split][0].append(pixels)
                collected[split][1].append(label)
        splits = {}
        for split, (images, labels) in collected.items():
            stacked = np.stack(images) if images else np.zeros((0, SIDE, SIDE, 1), np.uint8)
            if self.image_size is not None and len(stacked) and self.image_size != SIDE:
                stacked = resize_all(stacked, self.image_size)
            splits[split] = Split(
                images=stacked,
                labels=np.asarray(labels, np.int64),
                files=np.asarray([f"{split}:{i}" for i in range(len(labels))]),
            )
        return require_nonempty(splits, path)


def parse_row(row: list[str], path: Path, line_number: int) -> tuple[int, np.ndarray, str]:
    if len(row) != 3:
        raise DataError(f"expected 3 fields (emotion, pixels, Usage), got {len(row)}", path, line_number)
    emotion, pixels, usage = (cell.strip() for cell in row)
    if usage not in USAGE_TO_SPLIT:
        raise DataError(f"Usage must be one of {', '.join(USAGE_TO_SPLIT)}, got {usage!r}", path, line_number)
    if not emotion.isdigit() or int(emotion) >= len(CLASSES):
        raise DataError(f"emotion must be 0-{len(CLASSES) - 1}, got {emotion!r}", path, line_number)
    try:
        values = np.asarray(pixels.split(), dtype=np.int64)
    except ValueError:
        raise DataError("pixels must be space-separated whole numbers", path, line_number) from None
    if values.size != SIDE * SIDE or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise DataError(f"pixels must be {SIDE * SIDE} values in 0-255, got {values.size}", path, line_number)
    return int(emotion), values.astype(np.uint8).reshape(SIDE, SIDE, 1), USAGE_TO_SPLIT[usage]


def resize_all(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack(
        [np.asarray(Image.fromarray(im[..., 0]).resize((size, size), Image.BILINEAR))[..., None] for im in images]
    )
