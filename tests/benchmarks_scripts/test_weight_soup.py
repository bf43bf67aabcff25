"""benchmarks/weight_soup.py on the shared tiny model and a copy with one layer drawn afresh."""

import json
import shutil
import subprocess
import sys

import numpy as np

from tests.helpers import REPO


def test_a_layer_that_went_its_own_way_is_named_and_the_averages_are_scored(exported, tmp_path):
    from edge_fer.models.loading import load_model

    root, _ = exported
    model, _ = load_model(root / "float")
    fresh = next(layer for layer in model.layers if layer.name == "patch_sepconv_1")
    rng = np.random.default_rng(1)
    fresh.set_weights([rng.normal(size=w.shape).astype(np.float32) * w.std() for w in fresh.get_weights()])
    copy = tmp_path / "redrawn"
    shutil.copytree(root / "float", copy)
    model.save(str(copy / "model.keras"))
    out = tmp_path / "soup"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), "--dataset", "synthetic",
                             "--root", "", "--model", str(root / "float"), "--model", str(copy), "--bn-batches", "4",
                             "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.with_suffix(".json").read_text())
    assert [row["name"] for row in record["rows"]] == ["float", "redrawn", "mean of probabilities", "mean of weights"]
    assert all(0 <= row[split] <= 1 for row in record["rows"] for split in ("valid", "test"))
    cosine = {row["layer"]: row["min_cosine"] for row in record["layer_similarity"]}
    assert cosine["patch_sepconv_1"] < 0.5
    assert all(value > 0.999 for name, value in cosine.items() if name != "patch_sepconv_1")
    assert "patch_sepconv_1 (" in out.with_suffix(".md").read_text()


def test_members_of_other_classes_are_refused_before_anything_is_loaded(exported, tmp_path):
    root, _ = exported
    other = tmp_path / "other"
    shutil.copytree(root / "float", other)
    record = json.loads((other / "model.json").read_text())
    record["classes"] = record["classes"][::-1]  # averaging its weights would mix other classes' rows
    (other / "model.json").write_text(json.dumps(record))
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), "--dataset", "synthetic",
                             "--root", "", "--model", str(root / "float"), "--model", str(other),
                             "--out", str(tmp_path / "soup")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {other}: its classes")
    assert not list(tmp_path.glob("soup*"))


def test_members_of_another_architecture_are_refused_before_anything_is_loaded(exported, tmp_path):
    from edge_fer.models.loading import architecture, build_model

    root, _ = exported
    other = tmp_path / "other"
    shutil.copytree(root / "float", other)
    record = json.loads((other / "model.json").read_text())
    record["image_size"] += 16  # its weights load into its own model, and have other shapes than the first's
    build_model(architecture(record, other)).save(str(other / "model.keras"))
    (other / "model.json").write_text(json.dumps(record))
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), "--dataset", "synthetic",
                             "--root", "", "--model", str(root / "float"), "--model", str(other),
                             "--out", str(tmp_path / "soup")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {other}: not the architecture of")
    assert not list(tmp_path.glob("soup*"))


def test_one_model_or_a_missing_one_is_refused_in_one_line(exported, tmp_path):
    root, _ = exported
    missing = tmp_path / "no-such-model"
    for models, message in (([root / "float"], "error: give two or more models to average"),
                            ([root / "float", missing], f"error: model does not exist: {missing}")):
        arguments = [item for model in models for item in ("--model", str(model))]
        result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), "--dataset", "synthetic",
                                 "--root", "", *arguments, "--out", str(tmp_path / "soup")],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith(message)
        assert not list(tmp_path.glob("soup*"))
