"""FERPlus in its official layout: FER2013{Train,Valid,Test}/label.csv with 10 vote counts per image.

label.csv rows: image name, face box "(x, y, w, h)", then votes for neutral, happiness, surprise, sadness,
anger, disgust, fear, contempt, unknown, NF.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge_fer.data.base import Adapter, Split, register_dataset, require_file, require_nonempty, stat_fingerprint
from edge_fer.data.images import decode_images
from edge_fer.errors import DataError

EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTE_COLUMNS = EMOTIONS + ("unknown", "NF")
MAJORITY_IMAGES = ("majority", "probability-majority")  # label modes that keep only images with a majority label
SPLIT_FOLDERS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


def majority_label(votes) -> int | None:
    """The FERPlus paper's majority protocol: drop single votes as outliers, then keep the image only if
    its top class holds more than half of the remaining votes and is an emotion (not unknown or NF)."""
    kept = np.where(np.asarray(votes, dtype=np.float64) <= 1, 0.0, votes)
    total = kept.sum()
    top = int(np.argmax(kept))
    if total <= 0 or kept[top] <= 0.5 * total or top >= len(EMOTIONS):
        return None
    return top


def argmax_label(votes) -> int | None:
    """Top of the 8 emotions for every image with at least one emotion vote."""
    emotion_votes = np.asarray(votes[: len(EMOTIONS)], dtype=np.float64)
    if emotion_votes.sum() <= 0:
        return None
    return int(np.argmax(emotion_votes))


def vote_distribution(votes) -> np.ndarray | None:
    emotion_votes = np.asarray(votes[: len(EMOTIONS)], dtype=np.float64)
    total = emotion_votes.sum()
    return None if total <= 0 else (emotion_votes / total).astype(np.float32)


@register_dataset
class FerPlus(Adapter):
    name = "ferplus"
    classes = EMOTIONS
    # probability: the vote distribution of every image with an emotion vote (Barsoum et al.), scored on majority;
    # probability-majority: the vote distribution of the majority set's images only, so it differs from majority
    # in the loss alone, not in the images
    label_modes = ("majority", "argmax", "probability", "probability-majority")
    training_only_modes = ("probability", "probability-majority")
    version = 2  # 2: every split carries its images' vote distributions (Split.votes) for scoring

    def fingerprint(self) -> list:
        folders = [self.root / folder for folder in SPLIT_FOLDERS.values()]
        return stat_fingerprint(*folders, *(folder / "label.csv" for folder in folders))

    def read(self) -> dict[str, Split]:
        splits = {}
        for split_name, folder_name in SPLIT_FOLDERS.items():
            folder = self.root / folder_name
            if not folder.is_dir():
                raise DataError(
                    f"missing split folder {folder_name}/; expected the official FERPlus layout "
                    "(FER2013Train/, FER2013Valid/, FER2013Test/, each with label.csv)",
                    folder,
                )
            rows = read_label_csv(require_file(folder / "label.csv", "label file label.csv"))
            splits[split_name] = self.build_split(folder, rows, split_name)
        return require_nonempty(splits, self.root)

    def build_split(self, folder: Path, rows: list[tuple[str, np.ndarray]], split_name: str) -> Split:
        names, labels, distributions = [], [], []
        for file_name, votes in rows:
            label = majority_label(votes) if self.label_mode in MAJORITY_IMAGES else argmax_label(votes)
            if label is None:
                continue
            names.append(file_name)
            labels.append(label)
            distributions.append(vote_distribution(votes))
        if not names:
            raise DataError(f"split {split_name!r} has no images with label mode {self.label_mode!r}", folder)
        images = decode_images([folder / n for n in names], 1, self.image_size, f"decoding {folder.name}")
        return Split(
            images=images,
            labels=np.asarray(labels, np.int64),
            files=np.asarray(names),
            soft_labels=np.stack(distributions) if self.label_mode.startswith("probability") else None,
            votes=np.stack(distributions),
        )


MAX_VOTES = 1000  # FERPlus has 10 taggers per image


def read_label_csv(path: Path) -> list[tuple[str, np.ndarray]]:
    try:
        return parse_label_rows(path)
    except UnicodeDecodeError as error:
        raise DataError(f"not UTF-8 text (byte {error.start}); expected FERPlus's label.csv", path) from None


def parse_label_rows(path: Path) -> list[tuple[str, np.ndarray]]:
    rows, seen = [], {}
    with open(path, newline="", encoding="utf-8") as stream:
        for line_number, row in enumerate(csv.reader(stream), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2 + len(VOTE_COLUMNS):
                raise DataError(
                    f"expected {2 + len(VOTE_COLUMNS)} fields (image name, face box, 10 vote counts), got {len(row)}",
                    path,
                    line_number,
                )
            try:
                votes = np.asarray([int(cell) for cell in row[2:]], dtype=np.int64)
            except (ValueError, OverflowError):
                raise DataError(f"vote counts must be whole numbers, got {row[2:]}", path, line_number) from None
            if (votes < 0).any() or (votes > MAX_VOTES).any():
                raise DataError(f"vote counts must be from 0 to {MAX_VOTES}", path, line_number)
            name = row[0].strip()
            if not name or Path(name).name != name or name in (".", ".."):
                raise DataError(f"image name {name!r} must be a file name inside the split folder", path, line_number)
            if name in seen:  # each row would be decoded again: a file of repeated rows grows without bound
                raise DataError(f"image {name} is listed twice (first on line {seen[name]})", path, line_number)
            seen[name] = line_number
            rows.append((name, votes))
    return rows
