import json

import numpy as np
import pytest
import tf_keras as keras

from edge_fer.cli import main
from edge_fer.config import from_dict
from edge_fer.data import load_dataset
from edge_fer.data.preprocess import to_model_input
from edge_fer.models import create_model
from edge_fer.models.backbone import is_backbone_layer
from edge_fer.models.loading import load_model
from edge_fer.train import callbacks as callbacks_module
from edge_fer.train.config import TrainConfig
from edge_fer.train.splits import balanced_class_weights, stratified_holdout
from edge_fer.train.trainer import set_finetune, train
from tests.helpers import weight_groups

TINY_DATA = {"dataset": "synthetic", "options": {"train_count": 56, "valid_count": 21, "test_count": 21}}


def tiny_config(out, schedule="from_scratch", **train_overrides):
    return from_dict(TrainConfig, {
        "data": TINY_DATA,
        "model": {"variant": "patt_lite", "image_size": 64, "weights": "none"},
        "train": {"schedule": schedule, "batch_size": 8, "steps_per_epoch": 3,
                  "scratch": {"epochs": 2}, "head": {"epochs": 1}, "finetune": {"epochs": 1, "unfreeze_layers": 10},
                  **train_overrides},
        "out": str(out),
    })


def test_a_few_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    data = load_dataset("synthetic", train_count=16, valid_count=7, test_count=7, image_size=64)
    images, labels = to_model_input(data.splits["train"].images, 64), data.splits["train"].labels
    model = create_model("patt_lite", 7, 64, weights="none", dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    losses = [float(model.train_on_batch(images, labels)) for _ in range(30)]
    assert np.mean(losses[-3:]) < 0.75 * losses[0], losses


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    record = train(tiny_config(out))
    return out, record


def test_train_writes_a_safe_model_and_its_record(trained):
    out, record = trained
    meta = json.loads((out / "model.json").read_text())
    assert meta["pretrained"] is False and meta["weights"] == "none"
    assert meta["dataset"]["synthetic"] is True and meta["dataset"]["name"] == "synthetic"
    assert meta["classes"][0] == "neutral" and meta["image_size"] == 64
    assert meta["variant"] == "patt_lite" and "tensorflow" in meta["versions"]
    assert set(meta["metrics"]) == {"valid", "test"} and meta["metrics"]["test"]["count"] == 21
    assert (out / "config.toml").is_file()
    history = [json.loads(line) for line in (out / "stages" / "scratch" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    model, loaded_meta = load_model(out)
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    assert model(images).shape == (4, 7) and loaded_meta["variant"] == "patt_lite"
    assert not list(out.glob(".partial-*"))


def test_the_saved_model_holds_weights_without_optimizer_state(trained):
    out, _ = trained
    assert weight_groups(out / "model.keras") == ["layers", "vars"]  # Adam's slots would triple the file


def test_a_finished_run_skips_its_stages(trained, capsys):
    out, _ = trained
    train(tiny_config(out))
    assert "already complete" in capsys.readouterr().err


def train_interrupted(config, monkeypatch, epochs: int) -> None:
    """Train until `epochs` epochs are logged (and backed up), then stop as Ctrl-C would."""
    original = callbacks_module.EpochLog.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == epochs:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(callbacks_module.EpochLog, "on_epoch_end", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(config)


def test_an_interrupted_run_resumes_at_the_next_epoch(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, scratch={"epochs": 3})
    train_interrupted(config, monkeypatch, epochs=2)
    assert not (tmp_path / "model.keras").exists()
    train(config)
    history = [json.loads(line)["epoch"] for line in (tmp_path / "stages" / "scratch" / "history.jsonl").read_text().splitlines()]
    assert history == [1, 2, 3]


def test_two_stage_schedule_runs_both_stages(tmp_path):
    record = train(tiny_config(tmp_path, schedule="two_stage"))
    assert (tmp_path / "stages" / "head" / "done.weights.h5").is_file()
    assert (tmp_path / "stages" / "finetune" / "done.weights.h5").is_file()
    assert record["schedule"] == "two_stage"


def test_zero_scratch_epochs_saves_the_warm_started_model_at_another_size(trained, tmp_path):
    trained_out, _ = trained
    config = tiny_config(tmp_path, scratch={"epochs": 0})
    config.model.image_size, config.model.init_from = 128, str(trained_out)
    record = train(config)
    assert record["init_from"]["layers_fresh"] == ["patch_sepconv_1"]  # its kernel is the patch stride: 1 at 64 px, 2 at 128
    assert record["init_from"]["train_seconds"] == json.loads((trained_out / "model.json").read_text())["train_seconds"]
    assert not (tmp_path / "stages" / "scratch").exists()
    model, meta = load_model(tmp_path)
    source, _ = load_model(trained_out)
    assert meta["image_size"] == 128
    np.testing.assert_array_equal(model.get_layer("patch_pointwise").get_weights()[0],
                                  source.get_layer("patch_pointwise").get_weights()[0])


def test_init_seed_gives_fine_tunes_of_other_training_seeds_one_start(trained, tmp_path):
    """The layer init_from cannot fill starts from init_seed's draw, whatever the training seed: fine-tunes that
    differ only in data order and dropout, whose weights can be averaged."""
    trained_out, _ = trained

    def fresh_layer(name, **train_overrides):
        config = tiny_config(tmp_path / name, scratch={"epochs": 0}, **train_overrides)
        config.model.image_size, config.model.init_from = 128, str(trained_out)
        assert train(config)["init_from"]["layers_fresh"] == ["patch_sepconv_1"]
        return load_model(tmp_path / name)[0].get_layer("patch_sepconv_1").get_weights()[0]

    seed_0, seed_1 = fresh_layer("seed0", seed=0), fresh_layer("seed1", seed=1)
    assert not np.array_equal(seed_0, seed_1)
    np.testing.assert_array_equal(fresh_layer("seed1-start0", seed=1, init_seed=0), seed_0)


@pytest.mark.hostile("resources")
def test_negative_epochs_is_a_one_line_error_before_any_output(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--image-size", "64", "--weights", "none",
                 "--schedule", "from_scratch", "--set", "train.scratch.epochs=-1", "--out", str(out)])
    assert code != 0 and not out.exists()
    assert "train.scratch.epochs must be from 0 to 10000, got -1" in capsys.readouterr().err


def test_warm_start_copies_matching_layers_and_skips_empty_stages(trained, tmp_path):
    trained_out, _ = trained
    source, _ = load_model(trained_out)
    config = tiny_config(tmp_path, schedule="two_stage", finetune={"epochs": 0})
    config.model.variant, config.model.init_from = "patt_lite_paper", str(trained_out)
    record = train(config)
    assert record["init_from"]["layers_copied"] > 30
    assert {"pre_classification_dense", "attention"} <= set(record["init_from"]["layers_fresh"])
    assert not (tmp_path / "stages" / "finetune").exists()  # 0 epochs: no stage at all
    model, _ = load_model(tmp_path)
    np.testing.assert_array_equal(model.get_layer("conv_pw_3").get_weights()[0],  # frozen in the head stage
                                  source.get_layer("conv_pw_3").get_weights()[0])


@pytest.mark.hostile("exit-codes")
def test_drawing_labels_without_vote_distributions_is_a_one_line_error_before_any_output(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--image-size", "64", "--weights", "none",
                 "--set", "train.draw_labels=true", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "data.label_mode = \"probability\"" in err and not out.exists()


@pytest.mark.hostile("code-execution")
def test_warm_start_from_a_foreign_model_is_a_one_line_refusal(tmp_path, capsys):
    """A .keras file edge-fer did not write (no model.json to rebuild it from) is refused, never deserialized."""
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="other")])
    other.save(str(tmp_path / "other.keras"))
    code = main(["train", "--dataset", "synthetic", "--image-size", "64", "--weights", "none", "--out", str(tmp_path / "run"),
                 "--set", f"model.init_from={tmp_path / 'other.keras'}"])
    err = capsys.readouterr().err
    assert code == 2 and "no model.json beside it" in err and err.count("\n") == 1


def test_finetune_unfreezes_the_last_layers_with_batchnorm_frozen():
    model = create_model("patt_lite", 7, 64, weights="none")
    set_finetune(model, 12)
    backbone = [layer for layer in model.layers if is_backbone_layer(layer)]
    assert not any(layer.trainable for layer in backbone[:-12])
    tail = backbone[-12:]
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization) for layer in tail)
    assert model.get_layer("predictions").trainable


def test_class_weights_and_holdout():
    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0), 2: 0.0}
    split = load_dataset("synthetic", train_count=70, valid_count=7, test_count=7).splits["train"]
    kept, held = stratified_holdout(split, 0.2, seed=0)
    assert len(held) == 14 and np.bincount(held.labels).tolist() == [2] * 7
    assert not set(kept.files) & set(held.files)


def test_cli_config_file_overrides_and_bad_keys(tmp_path, capsys):
    config_file = tmp_path / "train.toml"
    config_file.write_text('[model]\nimage_size = 64\nweights = "none"\n[train]\nschedule = "from_scratch"\nsteps_per_epoch = 2\n'
                           '[train.scratch]\nepochs = 1\n[data.options]\ntrain_count = 28\nvalid_count = 7\ntest_count = 7\n')
    code = main(["train", "--dataset", "synthetic", "--config", str(config_file), "--batch-size", "4",
                 "--out", str(tmp_path / "run"), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["config"]["train"]["batch_size"] == 4 and record["config"]["model"]["image_size"] == 64

    assert main(["train", "--config", str(config_file), "--set", "train.bach_size=4"]) == 2
    assert "did you mean 'batch_size'" in capsys.readouterr().err
    assert main(["train", "--config", str(config_file), "--set", "train.batch_size=big"]) == 2
    assert "train.batch_size must be int" in capsys.readouterr().err
    assert main(["train", "--config", str(config_file), "--set", "train.schedule=fast"]) == 2
    assert "must be one of" in capsys.readouterr().err


def test_evaluate_cli(trained, capsys):
    out, record = trained
    assert main(["evaluate", str(out), "--dataset", "synthetic", "-o", "train_count=56", "-o", "valid_count=21",
                 "-o", "test_count=21", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["count"] == 21
    assert result["accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert len(result["confusion"]) == 7 and set(result["per_class_accuracy"]) == set(record["classes"])
    assert main(["evaluate", str(out / "nothing"), "--dataset", "synthetic"]) == 2


def test_two_trainings_with_one_seed_give_the_same_weights(tmp_path):
    """Same seed, same machine: the same shuffles, augmentations, dropout masks and so the same weights."""
    first, second = (train(tiny_config(tmp_path / name)) for name in ("a", "b"))
    model_a, _ = load_model(tmp_path / "a")
    model_b, _ = load_model(tmp_path / "b")
    for weights_a, weights_b in zip(model_a.get_weights(), model_b.get_weights()):
        np.testing.assert_array_equal(weights_a, weights_b)
    assert first["metrics"]["test"]["accuracy"] == second["metrics"]["test"]["accuracy"]


@pytest.mark.hostile("half-written")
def test_training_onto_a_full_disk_is_one_line_and_leaves_no_partial_checkpoint(tmp_path, capsys):
    from tests.helpers import small_disk

    with small_disk(tmp_path / "full", "3m") as full:
        code = main(["train", "--dataset", "synthetic", "-o", "train_count=40", "-o", "valid_count=10", "-o", "test_count=10",
                     "--image-size", "64", "--weights", "none", "--schedule", "from_scratch", "--set", "train.scratch.epochs=1",
                     "--out", str(full / "run")])
        error = capsys.readouterr().err
        assert code == 2 and "no space left on the disk" in error and "Traceback" not in error
        left = [p for p in full.rglob("*") if p.is_file()]
        assert not [p for p in left if "_temp" in str(p) or ".tempstate" in p.name or p.name.startswith(".partial-")], left


def test_validation_sees_the_moving_average_and_training_goes_on_from_the_trained_weights():
    from edge_fer.train.callbacks import AverageWeights

    keras.utils.set_random_seed(0)
    momentum = 0.8
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(keras.optimizers.Adam(0.1, use_ema=True, ema_momentum=momentum), "sparse_categorical_crossentropy")
    images = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    labels = (images[:, 0] > 0).astype(np.int64)
    trained, seen = [], {}
    average = AverageWeights()
    watch = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: trained.append(model.get_weights()),
        on_test_begin=lambda logs: seen.setdefault("validated", model.get_weights()))
    after = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.setdefault("after", model.get_weights()))
    expected = model.get_weights()  # the average starts at the initial weights
    model.fit(images, labels, batch_size=8, epochs=1, validation_data=(images, labels), verbose=0,
              callbacks=[average.swap_in, watch, average.swap_out, after])
    for step in trained:
        expected = [momentum * mean + (1 - momentum) * value for mean, value in zip(expected, step)]
    for validated, mean, last in zip(seen["validated"], expected, trained[-1]):
        np.testing.assert_allclose(validated, mean, rtol=1e-5, atol=1e-6)
        assert not np.allclose(validated, last)
    for kept, last in zip(seen["after"], trained[-1]):
        np.testing.assert_array_equal(kept, last)


def test_the_resume_backup_holds_the_trained_weights_and_their_average_apart(tmp_path, monkeypatch):
    """Validation and the best-epoch checkpoint see the average; the backup must hold the weights training goes on
    from, with the average beside them, so a resumed run neither trains on the average nor loses it."""
    import tensorflow as tf

    train_interrupted(tiny_config(tmp_path / "run", ema=0.9), monkeypatch, epochs=1)
    stage = tmp_path / "run" / "stages" / "scratch"
    best = create_model("patt_lite", 7, 64, weights="none")
    best.load_weights(str(stage / "best.weights.h5"))  # epoch 1's: the first epoch is always the best so far
    averaged_stem = best.get_layer("conv1").get_weights()[0]
    backup = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(stage / "backup" / "chief")))
    trained_stem = backup.get_tensor("model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    assert not np.allclose(trained_stem, averaged_stem)
    assert any(np.array_equal(backup.get_tensor(key), averaged_stem)
               for key, shape in backup.get_variable_to_shape_map().items() if "optimizer" in key and shape == [3, 3, 3, 32])
    train(tiny_config(tmp_path / "run", ema=0.9))
    assert len((stage / "history.jsonl").read_text().splitlines()) == 2
    assert main(["train", "--dataset", "synthetic", "--set", "train.ema=1.0", "--out", str(tmp_path / "bad")]) == 2
