"""fer2013, rafdb, ckplus and imagefolder on small layouts the tests write themselves."""

import numpy as np
import pytest

from edge_fer.data import list_datasets, load_dataset
from edge_fer.data.ckplus import subject_folds
from tests.helpers import write_png


def test_registry_lists_every_adapter():
    assert set(list_datasets()) >= {"ferplus", "fer2013", "rafdb", "ckplus", "imagefolder", "synthetic"}


def write_fer2013(path, rows):
    lines = ["emotion,pixels,Usage"] + rows
    path.write_text("\n".join(lines) + "\n")
    return path


def fer2013_row(label, usage, value=7):
    return f"{label},{' '.join([str(value)] * 2304)},{usage}"


def test_fer2013(tmp_path):
    write_fer2013(tmp_path / "fer2013.csv", [fer2013_row(3, "Training"), fer2013_row(0, "Training"),
                                              fer2013_row(6, "PublicTest"), fer2013_row(5, "PrivateTest", 200)])
    dataset = load_dataset("fer2013", tmp_path)
    assert dataset.splits["train"].labels.tolist() == [3, 0]
    assert dataset.classes[3] == "happiness" and dataset.classes[6] == "neutral"
    assert dataset.splits["test"].images.shape == (1, 48, 48, 1)
    assert int(dataset.splits["test"].images[0, 0, 0, 0]) == 200


def make_rafdb(root, with_subset=False):
    entries = [("train_00001.jpg", 4), ("train_00002.jpg", 7), ("test_0001.jpg", 1), ("test_0002.jpg", 6)]
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(f"{n} {l}" for n, l in entries) + "\n")
    for index, (name, _) in enumerate(entries):
        write_png(root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), size=(100, 100), mode="RGB", seed=index)
    if with_subset:
        (root / "subsets").mkdir()
        (root / "subsets" / "occlusion.txt").write_text("test_0002_aligned.jpg\n")
    return root


def test_rafdb_with_challenging_subset(tmp_path):
    dataset = load_dataset("rafdb", make_rafdb(tmp_path / "raf", with_subset=True))
    assert set(dataset.splits) == {"train", "test", "test_occlusion"}
    assert dataset.splits["train"].labels.tolist() == [3, 6]  # happiness, neutral
    assert dataset.splits["test_occlusion"].labels.tolist() == [5]  # anger
    assert dataset.image_shape == (100, 100, 3)


def make_ckplus(root, subjects=12):
    for subject in range(subjects):
        for index, emotion in enumerate(["anger", "happy", "surprise", "sadness"][: 1 + subject % 4]):
            write_png(root / emotion / f"S{subject:03d}_00{index}_0000001{index}.png", seed=subject * 10 + index)
    return root


def test_ckplus_folds_are_subject_independent(tmp_path):
    root = make_ckplus(tmp_path / "ck")
    seen_test = []
    for fold in range(4):
        dataset = load_dataset("ckplus", root, folds=4, fold=fold)
        train, test = dataset.splits["train"], dataset.splits["test"]
        assert not set(train.subjects) & set(test.subjects)
        assert len(train) + len(test) == sum(1 + s % 4 for s in range(12))
        seen_test += list(test.files)
    assert sorted(seen_test) == sorted(set(seen_test))  # every image tested exactly once
    assert load_dataset("ckplus", root, folds=4).classes[4] == "happiness"


def test_subject_folds_balance_and_disjointness():
    subjects = np.array([f"S{i % 23:03d}" for i in range(400)])
    folds = subject_folds(subjects, 10)
    for subject in np.unique(subjects):
        assert len(set(folds[subjects == subject])) == 1
    sizes = np.bincount(folds, minlength=10)
    assert sizes.min() > 0 and sizes.max() - sizes.min() <= 20


def test_imagefolder(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for label in ("calm", "joy"):
            for index in range(count):
                write_png(tmp_path / split / label / f"{index}.png", size=(20, 24), mode="RGB", seed=index)
    dataset = load_dataset("imagefolder", tmp_path)
    assert dataset.classes == ("calm", "joy")
    assert dataset.class_counts("train") == {"calm": 3, "joy": 3}
    assert dataset.image_shape == (24, 20, 3)


def test_imagefolder_mixed_sizes_need_image_size(tmp_path):
    from edge_fer.errors import DataError

    write_png(tmp_path / "train" / "a" / "0.png", size=(20, 20))
    write_png(tmp_path / "train" / "a" / "1.png", size=(30, 30))
    with pytest.raises(DataError, match="--image-size"):
        load_dataset("imagefolder", tmp_path)
    assert load_dataset("imagefolder", tmp_path, image_size=16).image_shape == (16, 16, 3)


@pytest.mark.hostile("resources")
def test_a_huge_image_is_refused_by_its_header_before_decoding(tmp_path):
    """A 20000x20000 PNG decompresses to 400 MB (1.2 GB as RGB); its header says so in a few bytes."""
    import struct
    import zlib

    from edge_fer.data.images import check_image_file, decode_image
    from edge_fer.errors import DataError

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    for side in (20000, 7000):  # above Pillow's own bomb limit, and above ours only
        header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        path = tmp_path / f"bomb-{side}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
        for read in (lambda: decode_image(path, 1, 64), lambda: check_image_file(path)):
            with pytest.raises(DataError, match="above the 40,000,000-pixel limit"):
                read()


@pytest.mark.hostile("malformed-input")
@pytest.mark.parametrize("dataset,option,message", [
    ("imagefolder", "channels=abc", "imagefolder option channels must be an integer, got 'abc'"),
    ("imagefolder", "channels=2", "channels must be 1 or 3, got 2"),
    ("imagefolder", "classes=3", "imagefolder option classes must be a list of names, got 3"),
    ("ckplus", "folds=x", "ckplus option folds must be an integer, got 'x'"),
    ("ckplus", "fold=true", "ckplus option fold must be an integer, got True"),
    ("rafdb", "subsets=3", "rafdb option subsets must be a table of name = path, got 3"),
    ("synthetic", "occlusion=nan", "synthetic option occlusion must be a number, got nan"),
    ("synthetic", "train_count=1e12", "synthetic option train_count must be an integer"),
    ("synthetic", "train_count=100000000", "synthetic option train_count must be in 1..1000000"),
])
def test_wrong_typed_adapter_options_are_one_line_errors(tmp_path, capsys, dataset, option, message):
    from edge_fer.cli import main

    (tmp_path / "train" / "happy").mkdir(parents=True)
    root = [] if dataset == "synthetic" else ["--root", str(tmp_path)]
    assert main(["data", "inspect", dataset, *root, "-o", option]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.hostile("malformed-input")
@pytest.mark.parametrize("dataset", ["imagefolder", "ckplus", "rafdb", "ferplus"])
def test_a_root_that_is_a_file_is_a_one_line_error(tmp_path, capsys, dataset):
    from edge_fer.cli import main

    root = tmp_path / "a-file"
    root.write_text("not a folder")
    assert main(["data", "inspect", dataset, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "dataset root is not a folder" in err and err.count("\n") == 1, err


def test_fer2013_takes_its_csv_file_as_the_root(tmp_path):
    write_fer2013(tmp_path / "fer2013.csv", [fer2013_row(3, "Training"), fer2013_row(6, "PublicTest"),
                                              fer2013_row(5, "PrivateTest")])
    assert load_dataset("fer2013", tmp_path / "fer2013.csv").splits["train"].labels.tolist() == [3]
