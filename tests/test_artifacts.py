"""What an artifact is: its format, and a metadata record checked before any field of it is used."""

import json
import os
from pathlib import Path

import pytest

from edge_fer.artifacts import format_of_artifact, read_metadata, record_of
from edge_fer.cli import main
from edge_fer.errors import UserError


def test_format_from_name_then_metadata(tmp_path):
    named = tmp_path / "model-tflite-int8.tflite"
    named.write_bytes(b"x")
    assert format_of_artifact(named).name == "tflite-int8"
    renamed = tmp_path / "mine.tflite"
    renamed.write_bytes(b"x")
    (tmp_path / "mine.tflite.json").write_text(json.dumps({"format": "tflite-int8-qat", "classes": ["a", "b"]}))
    assert format_of_artifact(renamed).name == "tflite-int8-qat"
    assert read_metadata(renamed)["classes"] == ["a", "b"]


def test_a_models_record_is_its_own_then_its_folders(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"format": "keras", "classes": ["folder"]}))
    (tmp_path / "model.keras").write_bytes(b"k")
    own = tmp_path / "model-tflite-int8.tflite"
    own.write_bytes(b"x")
    (tmp_path / "model-tflite-int8.tflite.json").write_text(json.dumps({"classes": ["own"]}))
    bare = tmp_path / "model-onnx-fp32.onnx"
    bare.write_bytes(b"not onnx")
    assert record_of(own)["classes"] == ["own"]
    assert record_of(bare)["classes"] == ["folder"]  # exported without a .json: the folder's model.json
    assert record_of(tmp_path)["classes"] == ["folder"]
    assert record_of(tmp_path / "model.keras")["classes"] == ["folder"]
    (tmp_path / "model.json").unlink()
    assert record_of(bare) is None
    with pytest.raises(UserError, match="does not exist"):
        record_of(tmp_path / "gone.tflite")


@pytest.mark.hostile("malformed-input")
def test_a_malformed_model_json_is_one_line_in_predict(tmp_path, capsys):
    (tmp_path / "model.keras").write_bytes(b"k")
    (tmp_path / "model.json").write_text('{"classes": ')
    image = tmp_path / "face.png"
    image.write_bytes(b"")
    assert main(["predict", "--artifact", str(tmp_path), str(image)]) == 2
    err = capsys.readouterr().err
    assert "model.json: metadata is not valid JSON" in err and "restore it from the training run" in err and err.count("\n") == 1, err


@pytest.mark.hostile("malformed-input")
@pytest.mark.parametrize("sidecar,message", [
    (b"{bad", "metadata is not valid JSON"),
    (b"\xff\xfe binary", "metadata is not valid JSON"),
    (b"[1, 2]", "metadata must be a JSON object, got list"),
    (b'{"classes": 5}', "metadata field 'classes' must be a list of class names, got 5"),
    (b'{"classes": [1, 2]}', "metadata field 'classes' must be a list of class names"),
    (b'{"image_size": "big"}', "metadata field 'image_size' must be an integer number of pixels"),
    (b'{"image_size": 100000}', "metadata field 'image_size' must be 8..4096, got 100000"),
    (b'{"format": "zip"}', "unknown export format 'zip'"),
    (b'{"preprocessing": "none"}', "metadata field 'preprocessing' must be a table"),
])
def test_bad_sidecars_are_one_line_errors_in_every_command(tmp_path, capsys, sidecar, message):
    artifact = tmp_path / "model-tflite-fp32.tflite"
    artifact.write_bytes(b"tflite bytes")
    (tmp_path / "model-tflite-fp32.tflite.json").write_bytes(sidecar)
    image = tmp_path / "face.png"
    image.write_bytes(b"")
    for argv in (["bench", str(artifact), "--store", str(tmp_path / "r.sqlite")],
                 ["predict", "--artifact", str(artifact), str(image)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r.sqlite").exists()  # refused before the store was made


@pytest.mark.hostile("data lost or wrong")
def test_outputs_never_replace_a_device_or_follow_a_link(tmp_path, capsys):
    import stat

    from edge_fer.cli import main

    ferplus = Path(__file__).resolve().parents[1] / "benchmarks" / "ferplus" / "model-onnx-fp32.onnx"
    assert main(["bundle", str(ferplus), "--target", "jetson-xavier-nx", "--out", "/dev/full"]) == 2
    assert "is not a regular file" in capsys.readouterr().err and stat.S_ISCHR(os.stat("/dev/full").st_mode)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "bundle.tar.gz"
    link.symlink_to(victim)
    assert main(["bundle", str(ferplus), "--target", "jetson-xavier-nx", "--out", str(link)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "keep me" and link.is_symlink() and not list(tmp_path.glob(".partial-*"))
