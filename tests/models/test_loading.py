"""A model file is data: the loader rebuilds the architecture from model.json through the registry and reads only
weights, so a crafted layer config in the file never runs."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_fer.errors import UserError
from edge_fer.models.loading import load_model

HOSTILE_LAMBDA = {"class_name": "Lambda", "config": {"name": "boom", "function": {
    "module": "os", "class_name": "function", "config": "system", "registered_name": "function"}}}


def copy_model(exported, tmp_path):
    root, _ = exported
    folder = tmp_path / "model"
    shutil.copytree(root / "float", folder, ignore=shutil.ignore_patterns("stages"))
    return folder


def rewrite_config(path, config):
    entries = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            entries[name] = archive.read(name)
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.hostile("code-execution")
def test_a_crafted_layer_config_never_runs(exported, tmp_path):
    folder = copy_model(exported, tmp_path)
    marker = tmp_path / "pwned"
    config = {"class_name": "Functional", "config": {"name": "x", "layers": [
        {**HOSTILE_LAMBDA, "inbound_nodes": [["_CONSTANT_VALUE", -1, f"touch {marker}", {}]]}]}}
    rewrite_config(folder / "model.keras", config)
    model, meta = load_model(folder)
    assert not marker.exists()
    original, _ = load_model(exported[0] / "float")
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(images).numpy(), original(images).numpy())


@pytest.mark.hostile("code-execution")
def test_foreign_or_tampered_files_are_one_line_refusals(exported, tmp_path):
    folder = copy_model(exported, tmp_path)
    legacy = tmp_path / "model.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(UserError, match="legacy .h5 full models are refused"):
        load_model(legacy)
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "variant": "os.system"}))
    with pytest.raises(UserError, match="names variant 'os.system'"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({**meta, "num_classes": 5, "classes": meta["classes"][:5]}))
    with pytest.raises(UserError, match="do not fit a patt_lite for 5 classes"):
        load_model(folder)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(UserError, match="no model.json beside it"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps(meta))
    (folder / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a .keras archive"):
        load_model(folder)


def test_a_narrow_model_at_an_overlapping_patch_size_loads_back_the_same(tmp_path):
    from edge_fer.models import create_model
    from edge_fer.train.trainer import save_model

    model = create_model("patt_lite", 8, 80, weights="none", alpha=0.5, seed=3)
    save_model(model, tmp_path / "model.keras")
    (tmp_path / "model.json").write_text(json.dumps({**model.edge_fer, "classes": [f"c{i}" for i in range(8)]}))
    loaded, meta = load_model(tmp_path)
    images = np.random.default_rng(0).uniform(0, 255, (2, 80, 80, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-6)
    assert meta["alpha"] == 0.5 and loaded.get_layer("patch_pointwise").output_shape[-1] == 128


@pytest.mark.hostile("malformed-input")
def test_a_model_json_with_a_bad_alpha_is_refused(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"PK")
    (tmp_path / "model.json").write_text(json.dumps({"variant": "patt_lite", "classes": ["a", "b"], "image_size": 64,
                                                     "alpha": "wide"}))
    with pytest.raises(UserError, match="alpha must be a number from 0.1 to 2"):
        load_model(tmp_path)


@pytest.mark.hostile("bounded")
def test_a_weights_entry_declaring_far_more_than_the_model_is_refused_before_reading(tmp_path):
    import time

    source = Path(__file__).resolve().parents[2] / "benchmarks" / "ferplus" / "vote-64"
    shutil.copy(source / "model.json", tmp_path / "model.json")
    with zipfile.ZipFile(tmp_path / "model.keras", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("model.weights.h5", "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(400):  # 400 MB of zeros, about 0.4 MB compressed
                entry.write(block)
    started = time.perf_counter()
    with pytest.raises(UserError, match="declares 419,430,400 bytes"):
        load_model(tmp_path)
    assert time.perf_counter() - started < 60
