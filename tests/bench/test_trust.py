"""Nothing wrong stored: a model whose outputs are not probabilities, a model with the wrong number of outputs, and
a sidecar that describes another file are refused, not scored as "passed" (tiny ONNX models made here)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_fer.artifacts import file_sha256
from edge_fer.bench import store
from edge_fer.cli import main
from tests.helpers import remount_read_only, small_disk, write_png

CLASSES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]
QUICK = ["--min-queries", "5", "--min-duration", "0.1", "--warmup", "1", "--offline-batch", "2",
         "--dataset", "synthetic", "-o", "train_count=7", "-o", "valid_count=7", "-o", "test_count=14"]


def tiny_onnx(path: Path, outputs: int = 7, broken: bool = False, classes=CLASSES) -> Path:
    """pixels (n, 16, 16, 3) -> channel means -> dense -> softmax; `broken`: 0/0 instead of the softmax."""
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, outputs)).astype(np.float32), "w")
    nodes = [helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["mean", "w"], ["logits"])]
    if broken:
        zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
        nodes += [helper.make_node("Mul", ["logits", "zero"], ["nothing"]),
                  helper.make_node("Div", ["nothing", "nothing"], ["probabilities"])]
        initializers = [weights, zero]
    else:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
        initializers = [weights]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 16, 16, 3])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", outputs])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    record = {"format": "onnx-fp32", "precision": "fp32", "classes": classes, "image_size": 16,
              "preprocessing": {"source_channels": 1}, "file_sha256": file_sha256(path)}
    Path(f"{path}.json").write_text(json.dumps(record))
    return path


def bench_rows(tmp_path: Path, artifact: Path, capsys) -> list[dict]:
    database = tmp_path / "s.sqlite"
    main(["bench", str(artifact), "--target", "host-cpu", "--store", str(database), *QUICK])
    capsys.readouterr()
    return store.fetch(database)


def test_a_sound_tiny_model_is_scored(tmp_path, capsys):
    [row] = bench_rows(tmp_path, tiny_onnx(tmp_path / "model-onnx-fp32.onnx"), capsys)
    assert row["status"] == "passed" and row["accuracy"] is not None


@pytest.mark.hostile("data lost or wrong")
def test_nan_outputs_are_a_failed_row_and_a_predict_error(tmp_path, capsys):
    model = tiny_onnx(tmp_path / "model-onnx-fp32.onnx", broken=True)
    [row] = bench_rows(tmp_path, model, capsys)
    assert row["status"] == "failed" and "NaN or infinity" in row["reason"] and row["accuracy"] is None
    face = write_png(tmp_path / "face.png")
    assert main(["predict", str(face), "--artifact", str(model), "--no-detect"]) == 2
    assert "NaN or infinity" in capsys.readouterr().err


@pytest.mark.hostile("data lost or wrong")
def test_a_model_with_another_number_of_outputs_than_classes_is_refused(tmp_path, capsys):
    [row] = bench_rows(tmp_path, tiny_onnx(tmp_path / "model-onnx-fp32.onnx", outputs=5), capsys)
    assert row["status"] == "failed" and "gives 5 outputs per image for 7 classes" in row["reason"]


@pytest.mark.hostile("data lost or wrong")
def test_a_sidecar_that_describes_another_file_is_refused_before_measuring(tmp_path, capsys):
    model = tiny_onnx(tmp_path / "model-onnx-fp32.onnx")
    tiny_onnx(tmp_path / "other.onnx", outputs=7)  # exported again over it: a new file, the old .json
    model.write_bytes((tmp_path / "other.onnx").read_bytes()[:-1] + b"\x00")
    database = tmp_path / "s.sqlite"
    assert main(["bench", str(model), "--target", "host-cpu", "--store", str(database), *QUICK]) == 2
    assert "describes another file" in capsys.readouterr().err and store.fetch(database) == []
    face = write_png(tmp_path / "face.png")
    assert main(["predict", str(face), "--artifact", str(model), "--no-detect"]) == 2
    assert "describes another file" in capsys.readouterr().err


@pytest.mark.hostile("half-written")
def test_a_bench_onto_a_full_disk_is_refused_before_measuring_and_leaves_no_empty_store(tmp_path, capsys):
    with small_disk(tmp_path / "full", "64k") as full:
        filler = full / "filler"
        with open(filler, "wb") as stream:
            try:
                stream.write(b"x" * (1 << 20))
            except OSError:
                pass
        model = tiny_onnx(tmp_path / "model-onnx-fp32.onnx")
        assert main(["bench", str(model), "--target", "host-cpu", "--store", str(full / "s.sqlite"), *QUICK]) == 2
        assert "results store" in capsys.readouterr().err
        assert sorted(p.name for p in full.iterdir()) == ["filler"]


@pytest.mark.hostile("half-written")
def test_a_read_only_store_is_refused_before_anything_is_measured(tmp_path, capsys, monkeypatch):
    from edge_fer.bench import runner

    with small_disk(tmp_path / "ro", "1m") as folder:
        model = tiny_onnx(tmp_path / "model-onnx-fp32.onnx")
        assert main(["bench", str(model), "--target", "host-cpu", "--store", str(folder / "s.sqlite"), *QUICK]) == 0
        capsys.readouterr()
        remount_read_only(folder)
        monkeypatch.setattr(runner, "measure_in_rounds", lambda *a, **k: pytest.fail("measured before the store was checked"))
        assert main(["bench", str(model), "--target", "host-cpu", "--store", str(folder / "s.sqlite"), *QUICK]) == 2
        error = capsys.readouterr().err
        assert "results store" in error and "readonly" in error
