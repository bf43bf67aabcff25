import numpy as np

from edge_fer.config import from_dict
from edge_fer.quantize.config import QatConfig
from edge_fer.quantize.qat import load_qat_model, run_qat
from edge_fer.train.trainer import load_model

TINY = {"dataset": "synthetic", "options": {"train_count": 56, "valid_count": 21, "test_count": 21}}


def test_qat_folder_round_trips_with_fake_quant_layers(exported):
    root, _ = exported
    model, meta = load_qat_model(root / "qat")
    assert meta["qat"] is True and any("Quantize" in type(layer).__name__ for layer in model.layers)


def test_the_float_control_runs_the_same_fine_tune_without_fake_quant(exported, tmp_path):
    root, _ = exported
    record = run_qat(from_dict(QatConfig, {"model": str(root / "float"), "data": TINY, "epochs": 1, "steps_per_epoch": 3,
                                           "fake_quant": False, "out": str(tmp_path)}))
    assert record["qat"] is False and record["format"] == "keras"
    model, _ = load_model(tmp_path)
    assert not any("Quantize" in type(layer).__name__ for layer in model.layers)
    source, _ = load_model(root / "float")
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights(), source.get_weights())]
    assert any(changed)  # it did train
