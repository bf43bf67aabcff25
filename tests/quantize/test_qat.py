import numpy as np
import pytest

from edge_fer.config import from_dict
from edge_fer.models.loading import load_model
from edge_fer.quantize.config import QatConfig
from edge_fer.quantize.qat import load_qat_model, run_qat
from tests.helpers import weight_groups

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
    assert weight_groups(tmp_path / "model.keras") == ["layers", "vars"]  # no optimizer slots


def _calibrated_ranges(float_model, symmetric, batches):
    from edge_fer.quantize.qat import calibrate_ranges, freeze_batchnorm, make_qat_model, moving_average_ranges

    qat_model = make_qat_model(float_model, symmetric=symmetric)
    freeze_batchnorm(qat_model)
    assert calibrate_ranges(qat_model, batches, steps=4) == len(moving_average_ranges(qat_model)) > 20
    return {variable.name.split(":")[0]: float(variable.numpy()) for variable in moving_average_ranges(qat_model)}


def test_calibration_sets_each_range_to_the_mean_of_its_batches(exported):
    import tf_keras as keras

    from edge_fer.data import load_dataset
    from edge_fer.data.preprocess import to_model_input

    root, _ = exported
    float_model, _ = load_model(root / "float")
    data = load_dataset("synthetic", train_count=64, valid_count=7, test_count=7, image_size=64)
    images = to_model_input(data.splits["train"].images, 64)
    batches = [(images[start:start + 16], None) for start in range(0, 64, 16)]
    relu = keras.Model(float_model.input, float_model.get_layer("conv1_relu").output)
    expected_max = np.mean([relu(batch, training=False).numpy().max() for batch, _ in batches])

    asymmetric = _calibrated_ranges(float_model, False, batches)
    assert asymmetric["quant_conv1_relu/output_min"] == 0.0  # tfmot alone leaves -6·0.999^steps here
    assert asymmetric["quant_conv1_relu/output_max"] == pytest.approx(expected_max, rel=0.03)
    scaled_min = np.mean([batch.min() / 127.5 - 1 for batch, _ in batches])
    assert asymmetric["quant_mobilenet_scale/output_min"] == pytest.approx(scaled_min, abs=0.02)

    symmetric = _calibrated_ranges(float_model, True, batches)  # the default: zero point 0 for TensorRT
    assert symmetric["quant_conv1_relu/output_max"] == pytest.approx(expected_max, rel=0.03)
    for name in ("quant_conv1_relu/output", "quant_mobilenet_scale/output"):
        assert symmetric[f"{name}_min"] == pytest.approx(-symmetric[f"{name}_max"] * 128 / 127, rel=1e-4)


def test_qat_folders_remember_their_scheme(exported, tmp_path):
    from edge_fer.quantize.qat import activation_quantizers

    root, _ = exported
    model, meta = load_qat_model(root / "qat")
    assert meta["qat_config"]["symmetric"] is False  # the default: tfmot's asymmetric ranges
    assert not any(quantizer.symmetric for quantizer in activation_quantizers(model))
    run_qat(from_dict(QatConfig, {"model": str(root / "float"), "data": TINY, "epochs": 1, "steps_per_epoch": 2,
                                  "calibration_steps": 2, "symmetric": True, "out": str(tmp_path)}))
    model, meta = load_qat_model(tmp_path)
    quantizers = activation_quantizers(model)
    symmetric = [quantizer.symmetric for quantizer in quantizers]
    assert meta["qat_config"]["symmetric"] is True and len(quantizers) > 20
    assert symmetric.count(False) == 1  # only the input's: raw pixels are exact at zero point -128
    [input_layer] = [layer for layer in model.layers if type(layer).__name__ == "QuantizeLayer"]
    assert not input_layer.quantizer.symmetric
