"""Small fixtures the tests make themselves."""

import contextlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FERPLUS_ROOT = REPO.parent / "shared" / "datasets" / "ferplus"
TRTEXEC_FIXTURES = REPO / "tests" / "fixtures" / "trtexec"  # real trtexec output posted in public threads (README there)


def write_png(path: Path, size=(48, 48), value=None, mode="L", seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    pixels = np.full(shape, value, np.uint8) if value is not None else rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode).save(path)
    return path


def cache_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*")) if cache.exists() else []


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "64k", read_only: bool = False):
    """A tmpfs of `size` mounted at `folder` (a full disk, or a read-only one after remount_read_only); skips the
    test where this machine cannot mount one (it needs root)."""
    import subprocess

    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def remount_read_only(folder: Path) -> None:
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def weight_groups(path) -> list:
    """The top-level groups of a .keras file's weights: 'optimizer' among them means Adam's slots were saved."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive:
        return sorted(h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r"))
