"""Image decoding shared by the adapters: one place that turns files into uint8 arrays."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge_fer import ui
from edge_fer.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_IMAGE_PIXELS = 40_000_000  # about 7300 x 5500: far above any face photo, far below what takes the memory down


def check_pixel_count(image, path: Path) -> None:
    """Refuse an image by its header, before a decoder allocates it."""
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"image is {width}x{height}, above the {MAX_IMAGE_PIXELS:,}-pixel limit; downscale it first", path)


@contextlib.contextmanager
def open_image(path: Path):
    """Pillow's image, checked by its header; every decoding failure becomes one DataError naming the file."""
    try:
        with Image.open(path) as image:
            check_pixel_count(image, path)
            yield image
    except FileNotFoundError:
        raise DataError("image file is missing", path) from None
    except Image.DecompressionBombError as error:
        raise DataError(f"image is above the {MAX_IMAGE_PIXELS:,}-pixel limit ({error}); downscale it first", path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot decode image ({error}); replace or remove the file", path) from None


def check_image_file(path: Path) -> None:
    """The size check for decoders other than Pillow (OpenCV): reads the header only."""
    with open_image(path):
        pass


def decode_image(path: Path, channels: int, size: int | None) -> np.ndarray:
    """Decode one image to uint8 (H, W, channels); resized to size×size where size is given."""
    with open_image(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
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
