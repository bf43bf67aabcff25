"""benchmarks/weight_soup.py on the shared tiny model and a copy with one layer drawn afresh."""

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))  # the script imports ensemble_teacher from its own folder
spec = importlib.util.spec_from_file_location("weight_soup", REPO / "benchmarks" / "weight_soup.py")
weight_soup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(weight_soup)


def test_greedy_soup_takes_members_best_first_and_keeps_those_that_raise_validation():
    def score(model: float) -> float:  # stands in for validation accuracy: best at 2.4
        return 1 - abs(model - 2.4) / 10

    models = [1.0, 2.0, 3.0, 10.0]
    kept, soup, steps = weight_soup.greedy_soup(models, [score(m) for m in models], np.mean, score)
    assert [step["member"] for step in steps] == [1, 2, 0, 3]  # in order of validation accuracy
    assert [step["kept"] for step in steps] == [True, True, False, False]
    assert kept == [1, 2] and soup == pytest.approx(2.5)
    alone, soup, _ = weight_soup.greedy_soup([2.4, 9.0], [score(2.4), score(9.0)], np.mean, score)
    assert alone == [0] and soup == 2.4  # no average beats the best member: the member itself


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
                             "--greedy", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.with_suffix(".json").read_text())
    names = [row["name"] for row in record["rows"]]
    assert names[:4] == ["float", "redrawn", "mean of probabilities", "mean of weights"]
    rows = {row["name"]: row for row in record["rows"]}
    steps = record["greedy_steps"]
    assert steps[0]["member"] == max(["float", "redrawn"], key=lambda name: rows[name]["valid"]) and steps[0]["kept"]
    kept = [step["member"] for step in steps if step["kept"]]
    assert names[4] == "greedy soup: " + " + ".join(kept)
    assert rows[names[4]]["valid"] >= max(rows[name]["valid"] for name in ("float", "redrawn"))
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


def test_one_model_a_missing_one_or_a_missing_out_folder_is_refused_in_one_line(exported, tmp_path):
    root, _ = exported
    missing = tmp_path / "no-such-model"
    soup = tmp_path / "soup"
    for models, message, out in (([root / "float"], "error: give two or more models to average", soup),
                                 ([root / "float", missing], f"error: model does not exist: {missing}", soup),
                                 ([root / "float"] * 2, f"error: {tmp_path / 'nowhere'} is not a folder",
                                  tmp_path / "nowhere" / "soup")):
        arguments = [item for model in models for item in ("--model", str(model))]
        result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), "--dataset", "synthetic",
                                 "--root", "", *arguments, "--out", str(out)],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.stderr.strip().splitlines()[-1].startswith(message)
        assert not list(tmp_path.glob("soup*"))


def test_the_averaged_model_is_saved_as_a_model_folder_that_loads_and_scores_as_the_table_says(exported, tmp_path):
    from edge_fer.data import load_dataset
    from edge_fer.evaluate import predict_keras
    from edge_fer.models.loading import load_model

    root, _ = exported
    twin = tmp_path / "twin" / "float"  # the same folder name as the first member's: rows are named by path
    shutil.copytree(root / "float", twin)
    model, _ = load_model(twin)
    model.set_weights([w * 0.9 for w in model.get_weights()])
    model.save(str(twin / "model.keras"))
    out, saved = tmp_path / "soup", tmp_path / "souped"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), "--dataset", "synthetic",
                             "--root", "", "--model", str(root / "float"), "--model", str(twin), "--bn-batches", "4",
                             "--out", str(out), "--save", str(saved)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.with_suffix(".json").read_text())
    assert [row["name"] for row in record["rows"]][:2] == [str(root / "float"), str(twin)]
    soup, meta = load_model(saved)
    assert meta["soup_of"]["models"] == [str(root / "float"), str(twin)] and "metrics" not in meta
    first, _ = load_model(root / "float")
    kernel = first.get_layer("patch_pointwise").get_weights()[0]
    np.testing.assert_allclose(soup.get_layer("patch_pointwise").get_weights()[0], 0.95 * kernel, rtol=1e-5, atol=1e-7)
    valid = load_dataset("synthetic").splits["valid"]
    accuracy = float(np.mean(predict_keras(soup, valid.images, soup.input_shape[1]).argmax(-1) == valid.labels))
    assert accuracy == pytest.approx(record["rows"][-1]["valid"], abs=5e-5)
    again = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), "--dataset", "synthetic",
                            "--root", "", "--model", str(root / "float"), "--model", str(twin), "--out", str(out),
                            "--save", str(saved)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1].startswith(f"error: {saved} exists")
