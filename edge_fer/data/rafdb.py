"""RAF-DB basic: EmoLabel/list_patition_label.txt ("train_00001.jpg 5") and Image/aligned/*_aligned.jpg.

Challenging-condition test subsets (occlusion, pose > 30°, pose > 45°) come as text files of image names,
given with the `subsets` option ({name: path}) or found as <root>/subsets/*.txt; each becomes a split
named test_<name>.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_fer.data.base import Adapter, Split, register_dataset, require_file, require_nonempty, stat_fingerprint, typed_option
from edge_fer.data.images import decode_images
from edge_fer.errors import DataError

# RAF-DB labels 1-7, in this order.
CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def aligned_name(image_name: str) -> str:
    stem = Path(image_name).stem.removesuffix("_aligned")
    return f"{stem}_aligned.jpg"


@register_dataset
class RafDb(Adapter):
    name = "rafdb"
    classes = CLASSES

    def check_options(self, options: dict) -> dict:
        unknown = set(options) - {"subsets"}
        if unknown:
            raise DataError(f"rafdb takes the option 'subsets' only, got {', '.join(sorted(unknown))}")
        subsets = {name: str(Path(path).expanduser()) for name, path in typed_option(self.name, options, "subsets", {}, dict).items()}
        found = self.root / "subsets"
        if found.is_dir():
            for text_file in sorted(found.glob("*.txt")):
                subsets.setdefault(text_file.stem, str(text_file))
        return {"subsets": subsets} if subsets else {}

    @property
    def label_file(self) -> Path:
        return self.root / "EmoLabel" / "list_patition_label.txt"

    def fingerprint(self) -> list:
        subset_files = [Path(p) for p in self.options.get("subsets", {}).values()]
        return stat_fingerprint(self.label_file, self.root / "Image" / "aligned", *subset_files)

    def read(self) -> dict[str, Split]:
        entries = read_label_file(require_file(self.label_file, "label file EmoLabel/list_patition_label.txt"))
        image_folder = self.root / "Image" / "aligned"
        splits = {}
        for split in ("train", "test"):
            names = [name for name in entries if name.startswith(f"{split}_")]
            splits[split] = self.build_split(image_folder, names, entries, split)
        for subset, list_path in self.options.get("subsets", {}).items():
            names = read_subset_file(Path(list_path), entries)
            splits[f"test_{subset}"] = self.build_split(image_folder, names, entries, f"test_{subset}")
        return require_nonempty(splits, self.label_file)

    def build_split(self, folder: Path, names: list[str], entries: dict[str, int], split: str) -> Split:
        paths = [folder / aligned_name(name) for name in names]
        return Split(
            images=decode_images(paths, 3, self.image_size, f"decoding {split}"),
            labels=np.asarray([entries[name] for name in names], np.int64),
            files=np.asarray(names),
        )


def read_label_file(path: Path) -> dict[str, int]:
    entries = {}
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(CLASSES):
            raise DataError(f"expected '<image name> <label 1-{len(CLASSES)}>', got {line.strip()!r}", path, line_number)
        if not parts[0].startswith(("train_", "test_")):
            raise DataError(f"image name must start with train_ or test_, got {parts[0]!r}", path, line_number)
        entries[parts[0]] = int(parts[1]) - 1
    return entries


def read_subset_file(path: Path, entries: dict[str, int]) -> list[str]:
    require_file(path, "subset list")
    names = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        name = Path(line.split()[0]).name
        stem = Path(name).stem.removesuffix("_aligned")
        match = next((n for n in (f"{stem}.jpg", name) if n in entries), None)
        if match is None:
            raise DataError(f"image {name!r} is not in list_patition_label.txt", path, line_number)
        names.append(match)
    return names
