"""Anything else: root/<split>/<class>/<image>. Classes come from the `classes` option or the train split."""

from __future__ import annotations

import numpy as np

from edge_fer.data.base import Adapter, Split, register_dataset, require_nonempty, stat_fingerprint, typed_option
from edge_fer.data.images import decode_images, list_images
from edge_fer.errors import DataError


@register_dataset
class ImageFolder(Adapter):
    name = "imagefolder"
    classes = ()

    def check_options(self, options: dict) -> dict:
        unknown = set(options) - {"classes", "channels"}
        if unknown:
            raise DataError(f"imagefolder takes the options classes and channels, got {', '.join(sorted(unknown))}")
        channels = typed_option(self.name, options, "channels", 3, int, 1, 3)
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        split_folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not split_folders:
            raise DataError("no split folders found; expected root/<split>/<class>/<image>", self.root)
        classes = typed_option(self.name, options, "classes", [], list)
        if not classes:
            source = next((p for p in split_folders if p.name == "train"), split_folders[0])
            classes = sorted(p.name for p in source.iterdir() if p.is_dir())
        self.classes = tuple(classes)
        return {"classes": list(classes), "channels": channels}

    def fingerprint(self) -> list:
        folders = [p for p in self.root.iterdir() if p.is_dir()]
        return stat_fingerprint(*sorted(folders + [c for f in folders for c in f.iterdir() if c.is_dir()]))

    def read(self) -> dict[str, Split]:
        splits = {}
        for split_folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            paths, labels = [], []
            for class_folder in sorted(p for p in split_folder.iterdir() if p.is_dir()):
                if class_folder.name not in self.classes:
                    raise DataError(f"folder name is not a known class (known: {', '.join(self.classes)})", class_folder)
                images = list_images(class_folder)
                paths += images
                labels += [self.classes.index(class_folder.name)] * len(images)
            if not paths:
                raise DataError(f"split {split_folder.name!r} has no images", split_folder)
            splits[split_folder.name] = Split(
                images=decode_images(paths, self.options["channels"], self.image_size, f"decoding {split_folder.name}"),
                labels=np.asarray(labels, np.int64),
                files=np.asarray([str(p.relative_to(self.root)) for p in paths]),
            )
        return require_nonempty(splits, self.root)
