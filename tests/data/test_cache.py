import numpy as np
import pytest

from edge_fer.data import load_dataset
from edge_fer.data.ferplus import FerPlus
from tests.data.test_ferplus import make_ferplus
from tests.helpers import cache_files


def test_second_load_comes_from_the_cache(tmp_path, isolated_cache, monkeypatch):
    root = make_ferplus(tmp_path / "ferplus")
    first = load_dataset("ferplus", root)
    assert len([p for p in cache_files(isolated_cache) if p.suffix == ".npz"]) == 1

    def must_not_decode(self):
        raise AssertionError("decoded again although the cache is fresh")

    monkeypatch.setattr(FerPlus, "read", must_not_decode)
    again = load_dataset("ferplus", root)
    for split in first.splits:
        assert np.array_equal(first.splits[split].images, again.splits[split].images)
        assert np.array_equal(first.splits[split].labels, again.splits[split].labels)
        assert list(first.splits[split].files) == list(again.splits[split].files)


def test_cache_is_keyed_by_label_mode_and_size(tmp_path, isolated_cache):
    root = make_ferplus(tmp_path / "ferplus")
    load_dataset("ferplus", root)
    load_dataset("ferplus", root, label_mode="argmax")
    load_dataset("ferplus", root, image_size=24)
    assert len([p for p in cache_files(isolated_cache) if p.suffix == ".npz"]) == 3


def test_changed_label_file_invalidates_the_cache(tmp_path):
    root = make_ferplus(tmp_path / "ferplus")
    assert len(load_dataset("ferplus", root).splits["train"]) == 2
    label_file = root / "FER2013Train" / "label.csv"
    lines = label_file.read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + ',"(0, 0, 48, 48)",0,0,0,0,0,0,9,0,1,0'
    label_file.write_text("\n".join(lines) + "\n")
    assert len(load_dataset("ferplus", root).splits["train"]) == 3


@pytest.mark.hostile("malformed-input")
def test_corrupt_cache_entry_is_rebuilt(tmp_path, isolated_cache):
    root = make_ferplus(tmp_path / "ferplus")
    load_dataset("ferplus", root)
    entry = next(p for p in cache_files(isolated_cache) if p.suffix == ".npz")
    entry.write_bytes(b"not an npz")
    assert len(load_dataset("ferplus", root).splits["test"]) == 1


@pytest.mark.hostile("data lost or wrong")
def test_a_cache_entry_edited_to_hold_impossible_labels_is_decoded_again(tmp_path, isolated_cache):
    root = make_ferplus(tmp_path / "ferplus")
    original = load_dataset("ferplus", root).splits["train"].labels.copy()
    entry = next(p for p in cache_files(isolated_cache) if p.suffix == ".npz")
    with np.load(entry, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["train.labels"] = np.array([99, -5][:len(original)], dtype=np.int64)
    with open(entry, "wb") as stream:
        np.savez(stream, **arrays)
    assert np.array_equal(load_dataset("ferplus", root).splits["train"].labels, original)


@pytest.mark.hostile("writes outside")
def test_a_home_that_does_not_exist_is_not_created(tmp_path, monkeypatch):
    import subprocess
    import sys

    nowhere = tmp_path / "nonexistent"
    root = make_ferplus(tmp_path / "ferplus")
    env = {key: value for key, value in __import__("os").environ.items() if key not in ("EDGE_FER_CACHE", "XDG_CACHE_HOME")}
    result = subprocess.run([sys.executable, "-m", "edge_fer.cli", "data", "inspect", "ferplus", "--root", str(root)],
                            env={**env, "HOME": str(nowhere)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not nowhere.exists()
