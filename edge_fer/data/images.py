"""Image decoding shared by the adapters: one place that turns files into uint8 arrays."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge_fer import ui
from edge_fer.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def decode_image(path: Path, channels: int, size: int | None) -> np.ndarray:
    """Decode one image to uint8 (H, W, channels); resized to size×size where size is given."""
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError("image file is missing", path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot decode image ({error}); replace or remove the file", path) from None
    return array.reshape(array.shape[0], array.shape[1], channels)


def decode_images(paths: Sequence[Path], channels: int, size: int | None, description: str) -> np.ndarray:
    """Decode many images in threads (Pillow releases the GIL while decoding), with progress."""
    if not paths:
        return np.zeros((0, size or 1, size or 1, channels), np.uint8)
    arrays: list[np.ndarray] = [None] * len(paths)  # type: ignore[list-item]
    with ui.progress() as bar, ThreadPoolExecutor(max_workers=4) as pool:
        task = bar.add_task(description, total=len(paths))
        for index, array in enumerate(pool.map(lambda p: decode_image(p, channels, size), paths, chunksize=64)):
            arrays[index] = array
            bar.advance(task)
    return stack_same_size(arrays, paths)


def stack_same_size(arrays: list[np.ndarray], paths: Sequence[Path]) -> np.ndarray:
    first = arrays[0].shape
    for array, path in zip(arrays, paths):
        if array.shape != first:
            raise DataError(
                f"image is {array.shape[1]}x{array.shape[0]} but {paths[0].name} is {first[1]}x{first[0]};"
                " pass --image-size to resize every image to one size",
                path,
            )
    return np.stack(arrays)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
