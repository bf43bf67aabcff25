"""The CLI face: version, listing, inspect, and one-line errors (exit 2, no traceback, no cache entry)."""

import json
import subprocess
import sys

import pytest

from edge_fer import __version__
from edge_fer.cli import main
from tests.data.test_ferplus import make_ferplus
from tests.helpers import cache_files, write_png


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_data_list_json(capsys):
    code, out, _ = run_cli(capsys, "data", "list", "--json")
    assert code == 0
    names = {row["name"]: row for row in json.loads(out)}
    assert names["ferplus"]["label_modes"] == ["majority", "argmax", "probability", "probability-majority"]
    assert names["synthetic"]["synthetic"] is True


def test_inspect_synthetic_with_no_other_argument(capsys):
    code, out, _ = run_cli(capsys, "data", "inspect", "synthetic")
    assert code == 0
    assert "SYNTHETIC" in out and "train" in out and "2100" in out


def test_inspect_json_shape(capsys, tmp_path):
    root = make_ferplus(tmp_path / "ferplus")
    code, out, _ = run_cli(capsys, "data", "inspect", "ferplus", "--root", str(root), "--label-mode", "argmax", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["dataset"] == "ferplus" and payload["label_mode"] == "argmax"
    assert payload["splits"]["train"]["count"] == 3
    assert payload["splits"]["train"]["class_counts"]["neutral"] == 2
    assert set(payload["splits"]) == {"train", "valid", "test"}


def break_missing_label(root):
    (root / "FER2013Valid" / "label.csv").unlink()
    return root / "FER2013Valid" / "label.csv", None


def break_malformed_row(root):
    path = root / "FER2013Test" / "label.csv"
    lines = path.read_text().splitlines()
    lines.insert(1, 'fer9999999.png,"(0, 0, 48, 48)",1,2,3')
    path.write_text("\n".join(lines) + "\n")
    return path, "line 2"


def break_non_numeric_votes(root):
    path = root / "FER2013Train" / "label.csv"
    path.write_text(path.read_text() + 'fer9999999.png,"(0, 0, 48, 48)",a,0,0,0,0,0,0,0,0,0\n')
    return path, "line 4"


def break_unreadable_image(root):
    path = root / "FER2013Train" / "fer0000000.png"
    path.write_bytes(b"this is not a png at all")
    return path, None


def break_truncated_image(root):
    path = root / "FER2013Train" / "fer0000001.png"
    path.write_bytes(path.read_bytes()[:60])
    return path, None


def break_missing_image(root):
    path = root / "FER2013Test" / "fer0000004.png"
    path.unlink()
    return path, None


def break_empty_split(root):
    path = root / "FER2013Valid" / "label.csv"
    path.write_text('fer0000003.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,0,0,10\n')
    return root / "FER2013Valid", "no images"


@pytest.mark.hostile("malformed-input")
@pytest.mark.parametrize("breaker", [break_missing_label, break_malformed_row, break_non_numeric_votes,
                                     break_unreadable_image, break_truncated_image, break_missing_image,
                                     break_empty_split])
def test_bad_ferplus_input_is_one_clear_line(capsys, tmp_path, isolated_cache, breaker):
    root = make_ferplus(tmp_path / "ferplus")
    culprit, detail = breaker(root)
    code, out, err = run_cli(capsys, "data", "inspect", "ferplus", "--root", str(root))
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert str(culprit) in err
    if detail:
        assert detail in err
    assert "Traceback" not in err
    assert cache_files(isolated_cache) == [] or not any(p.is_file() for p in cache_files(isolated_cache))


@pytest.mark.hostile("malformed-input")
def test_missing_root(capsys, tmp_path):
    code, _, err = run_cli(capsys, "data", "inspect", "ferplus", "--root", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err and "does not exist" in err


@pytest.mark.hostile("malformed-input")
def test_unknown_class_folder(capsys, tmp_path):
    write_png(tmp_path / "ck" / "happy" / "S001_001_00000001.png")
    write_png(tmp_path / "ck" / "bored" / "S002_001_00000001.png")
    code, _, err = run_cli(capsys, "data", "inspect", "ckplus", "--root", str(tmp_path / "ck"), "-o", "folds=2")
    assert code == 2 and "bored" in err and "not a known class" in err


def test_imagefolder_empty_split(capsys, tmp_path):
    write_png(tmp_path / "if" / "train" / "a" / "0.png")
    (tmp_path / "if" / "test" / "a").mkdir(parents=True)
    code, _, err = run_cli(capsys, "data", "inspect", "imagefolder", "--root", str(tmp_path / "if"))
    assert code == 2 and "'test' has no images" in err


@pytest.mark.hostile("malformed-input")
def test_fer2013_malformed_row(capsys, tmp_path):
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    code, _, err = run_cli(capsys, "data", "inspect", "fer2013", "--root", str(tmp_path))
    assert code == 2 and "fer2013.csv, line 2" in err and "2304" in err


def test_unknown_dataset_suggests_the_closest(capsys):
    code, _, err = run_cli(capsys, "data", "inspect", "ferplu")
    assert code == 2 and "did you mean 'ferplus'" in err


@pytest.mark.hostile("malformed-input")
def test_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edge_fer.cli", "data", "inspect", "ferplus", "--root", str(tmp_path / "x")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0


@pytest.mark.hostile("resources")
@pytest.mark.parametrize("argv,message", [
    (["model", "summary", "patt_lite", "--num-classes", "0"], "--num-classes must be from 2 to 1000, got 0"),
    (["model", "summary", "patt_lite", "--image-size", "100000"], "--image-size must be from 32 to 1024, got 100000"),
    (["data", "inspect", "synthetic", "--image-size", "100000"], "--image-size must be from 32 to 1024"),
    (["bench", "x.tflite", "--offline-batch", "0"], "offline_batch must be from 1 to 4096, got 0"),
    (["bench", "x.tflite", "--min-queries", "-5"], "min_queries must be from 1 to 10000000, got -5"),
    (["bench", "x.tflite", "--min-duration", "nan"], "min_duration_s must be a finite number, got nan"),
    (["train", "--dataset", "synthetic", "--set", "train.scratch.epochs=1000000000000"], "epochs must be from 0 to 10000"),
    (["train", "--dataset", "synthetic", "--set", "train.scratch.learning_rate=nan"], "learning_rate must be a finite number"),
    (["train", "--dataset", "synthetic", "--set", "train.batch_size=0"], "train.batch_size must be from 1 to 4096, got 0"),
])
def test_out_of_range_settings_are_one_line_errors_before_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.hostile("output-location")
@pytest.mark.parametrize("where", ["missing-folder/b.tar.gz", "a-file/b.tar.gz", "a-folder"])
def test_bundle_into_a_bad_place_is_one_line_and_leaves_nothing(tmp_path, capsys, where):
    artifact = tmp_path / "model-tflite-fp32.tflite"
    artifact.write_bytes(b"tflite bytes")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    before = sorted(tmp_path.rglob("*"))
    assert main(["bundle", str(artifact), "--target", "jetson-orin-nano", "--out", str(tmp_path / where)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before  # no .partial-* file, nothing else


@pytest.mark.hostile("output-location")
@pytest.mark.parametrize("command", ["bench", "bundle", "train", "report"])
def test_an_unwritable_output_is_one_line_and_leaves_nothing(tmp_path, capsys, unwritable, command, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artifact = tmp_path / "model-tflite-fp32.tflite"
    artifact.write_bytes(b"tflite bytes")
    before = sorted(unwritable.iterdir())
    argv = {"bench": ["bench", str(artifact), "--store", str(unwritable / "results.sqlite")],
            "bundle": ["bundle", str(artifact), "--target", "jetson-orin-nano", "--out", str(unwritable / "b.tar.gz")],
            "train": ["train", "--dataset", "synthetic", "--set", "train.scratch.epochs=1", "--out", str(unwritable / "run")],
            "report": ["report", "--store", str(tmp_path / "none.sqlite"), "--out", str(unwritable / "report")]}[command]
    if command == "report":
        from edge_fer.bench import store

        store.check(tmp_path / "none.sqlite")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(unwritable.iterdir()) == before


@pytest.mark.hostile("output-location")
def test_export_into_an_unwritable_folder_is_one_line(exported, capsys, unwritable):
    root, _ = exported
    assert main(["export", str(root / "float"), "--formats", "onnx-fp32", "--out", str(unwritable / "artifacts")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (unwritable / "artifacts").exists()


@pytest.mark.hostile("malformed-input")
def test_report_without_a_store_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--store", "missing.sqlite", "--out", "report"]) == 2
    err = capsys.readouterr().err
    assert "no results store at missing.sqlite" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.hostile("tracebacks")
def test_a_toml_nested_thousands_deep_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["run", str(deep)]) == 2
    assert "nested too deeply" in capsys.readouterr().err


@pytest.mark.hostile("tracebacks")
def test_a_terminal_that_cannot_show_a_character_gets_a_question_mark_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    qdq = Path(__file__).resolve().parents[2] / "benchmarks" / "ferplus" / "model-onnx-int8-qdq.onnx"
    result = subprocess.run([sys.executable, "-m", "edge_fer.cli", "check", "tensorrt", str(qdq), "--dla"],
                            env={**os.environ, "PYTHONIOENCODING": "ascii"}, capture_output=True, timeout=300)
    assert b"Traceback" not in result.stderr and b"cannot run on DLA" in result.stdout + result.stderr
    assert result.returncode == 2  # the Q/DQ file is not for DLA; the check says so in plain ASCII
