"""Two-stage (paper) and from-scratch training, resumable per epoch, seeded, with the best weights kept.

Layout of an output folder:
  config.toml            the resolved configuration
  stages/<name>/         backup/ (resume state), best.weights.h5, history.jsonl, done.weights.h5
  model.keras            the final model (safe-mode loadable)
  model.json             classes, image size, preprocessing, variant, weights origin, dataset, metrics, versions
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edge_fer import atomic, ui
from edge_fer.config import save_toml, to_dict
from edge_fer.data import load_dataset
from edge_fer.data.preprocess import PREPROCESSING
from edge_fer.errors import UserError
from edge_fer.models.loading import load_model
from edge_fer.models.weights import weights_digest, without_optimizer
from edge_fer.train.config import TrainConfig, check_label_drawing, check_recipe
from edge_fer.train.distill import (
    check_distill,
    load_teachers,
    make_accuracy,
    make_distillation_loss,
    teacher_paths,
    teacher_report,
    with_teacher_targets,
)
from edge_fer.train.distribute import (
    Placement,
    barrier,
    check_shared_folder,
    create_placement,
    forget_cluster_token,
    is_peer_loss,
    load_weights_file,
    local_copy,
    restart_after_peer_loss,
    save_weights_file,
)
from edge_fer.train.splits import balanced_class_weights, scoring_test_split, train_valid_test


@dataclass
class Stage:
    name: str
    epochs: int
    make_optimizer: Callable[[int], object]  # steps per epoch -> optimizer
    set_trainable: Callable[[object], None]
    extra_callbacks: Callable[[], list]


def set_frozen_backbone(model) -> None:
    from edge_fer.models.backbone import is_backbone_layer

    for layer in model.layers:
        layer.trainable = not is_backbone_layer(layer)


def set_finetune(model, unfreeze: int) -> None:
    """The last `unfreeze` backbone layers train; BatchNorm stays frozen (so it runs in inference mode)."""
    import tf_keras as keras

    from edge_fer.models.backbone import is_backbone_layer

    backbone = [layer for layer in model.layers if is_backbone_layer(layer)]
    open_from = max(0, len(backbone) - unfreeze)
    for index, layer in enumerate(backbone):
        layer.trainable = index >= open_from and not isinstance(layer, keras.layers.BatchNormalization)
    for layer in model.layers:
        if not is_backbone_layer(layer):
            layer.trainable = True


def set_all_trainable(model) -> None:
    for layer in model.layers:
        layer.trainable = True


def plan_stages(config: TrainConfig) -> list[Stage]:
    import tf_keras as keras

    train = config.train
    optimizer_options = {"global_clipnorm": train.clipnorm} if train.clipnorm else {}
    if train.ema:
        optimizer_options |= {"use_ema": True, "ema_momentum": train.ema}
    if train.schedule == "from_scratch":
        scratch = train.scratch

        def scratch_optimizer(steps: int):
            warmup = int(scratch.warmup_epochs * steps)
            schedule = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=scratch.learning_rate * 0.01 if warmup else scratch.learning_rate,
                decay_steps=max(1, scratch.epochs * steps - warmup), alpha=scratch.final_learning_rate_fraction,
                warmup_target=scratch.learning_rate if warmup else None, warmup_steps=warmup)
            return keras.optimizers.Adam(schedule, **optimizer_options)

        def scratch_callbacks():
            if scratch.early_stop_patience is None:
                return []
            return [keras.callbacks.EarlyStopping("val_accuracy", patience=scratch.early_stop_patience, mode="max")]

        stages = [Stage("scratch", scratch.epochs, scratch_optimizer, set_all_trainable, scratch_callbacks)]
    else:
        stages = two_stages(config, optimizer_options)
    for stage in stages:
        if stage.epochs < 0:
            raise UserError(f"train.{stage.name}.epochs is {stage.epochs}; use 0 (skip the stage) or more")
    return [stage for stage in stages if stage.epochs > 0]


def two_stages(config: TrainConfig, optimizer_options: dict) -> list[Stage]:
    """The paper's schedule: the head on a frozen backbone, then the last layers unfrozen with BN frozen."""
    import tf_keras as keras

    head, finetune = config.train.head, config.train.finetune
    return [
        Stage("head", head.epochs, lambda steps: keras.optimizers.Adam(head.learning_rate, **optimizer_options), set_frozen_backbone,
              lambda: [keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=head.plateau_factor, patience=head.plateau_patience,
                                                         min_delta=head.min_delta, min_lr=head.min_learning_rate, mode="max"),
                       keras.callbacks.EarlyStopping("val_accuracy", patience=head.early_stop_patience, min_delta=head.min_delta, mode="max")]),
        Stage("finetune", finetune.epochs,
              lambda steps: keras.optimizers.Adam(keras.optimizers.schedules.InverseTimeDecay(
                  finetune.learning_rate, finetune.decay_steps, finetune.decay_rate), **optimizer_options),
              lambda model: set_finetune(model, config.finetune_layers()),
              lambda: [keras.callbacks.EarlyStopping("val_accuracy", patience=finetune.early_stop_patience, min_delta=finetune.min_delta, mode="max")]),
    ]


def warm_start(model, source_path: str) -> dict:
    """Copy the weights of every layer of `source_path` whose name and weight shapes match a layer of `model`."""
    source, source_meta = load_model(source_path)
    copied, skipped = [], []
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            source_weights = source.get_layer(layer.name).get_weights()
        except ValueError:
            skipped.append(layer.name)
            continue
        if [w.shape for w in source_weights] == [w.shape for w in weights]:
            layer.set_weights(source_weights)
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    if not copied:
        raise UserError(f"model.init_from: no layer of {source_path} matches a layer of this model by name and shape")
    ui.log(f"initialised {len(copied)} layers from {source_path}; {len(skipped)} start fresh: {', '.join(skipped) or 'none'}")
    return {"path": str(source_path), "layers_copied": len(copied), "layers_fresh": skipped,
            "train_seconds": source_meta.get("train_seconds")}  # the start's own cost, for reports of the total


def scope_of(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def shard_by_batch_share(dataset):
    """Each worker takes its share of every global batch (the order of a one-process run); the arrays are in
    memory, so there are no files to shard by."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def run_stage(stage: Stage, model, train_data, valid_data, stage_dir: Path, steps: int, class_weight, loss,
              placement: Placement, calibration_data, metric="accuracy") -> None:
    import tf_keras as keras

    from edge_fer.train.callbacks import AverageWeights, EpochLog, PreciseBatchNorm, read_history

    done = stage_dir / "done.weights.h5"
    if done.is_file():
        load_weights_file(placement, model, done)
        ui.log(f"[{stage.name}] already complete: loaded {done}")
        return
    if placement.is_chief:
        stage_dir.mkdir(parents=True, exist_ok=True)
    history_path = stage_dir / "history.jsonl"
    best_so_far = max((r.get("val_accuracy", -1.0) for r in read_history(history_path)), default=None)
    best_path = stage_dir / "best.weights.h5"
    with scope_of(placement.strategy):
        stage.set_trainable(model)
        model.compile(optimizer=stage.make_optimizer(steps), loss=loss, metrics=[metric])
    average = AverageWeights()
    # in this order: the averaged weights (if any) in, BatchNorm statistics for them, validation, the best-epoch
    # checkpoint, the trained weights back, the resume backup, and only then the epoch's history line
    callbacks = [
        average.swap_in,
        PreciseBatchNorm(calibration_data),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_accuracy", mode="max", save_best_only=True,
                                        save_weights_only=True, initial_value_threshold=best_so_far),
        average.swap_out,
        keras.callbacks.BackupAndRestore(str(stage_dir / "backup")),
        EpochLog(stage.name, stage.epochs, history_path if placement.is_chief else None, steps),
        *stage.extra_callbacks(),
    ]
    model.fit(train_data, validation_data=valid_data, epochs=stage.epochs, steps_per_epoch=steps,
              class_weight=class_weight, callbacks=callbacks, verbose=0)
    barrier(placement)  # the chief has written the best weights every worker loads next
    if best_path.is_file():
        load_weights_file(placement, model, best_path)  # early stopping's "restore best", also across resumed runs
    save_weights_file(placement, model, done)


def out_of_disk(error: BaseException) -> bool:
    """A full disk, as Python (ENOSPC) or TensorFlow's checkpoint writer (ResourceExhaustedError) reports it."""
    import errno

    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error)


def remove_partial_checkpoints(out: Path) -> None:
    """What a checkpoint write cut short leaves: TensorFlow's ckpt-N_temp folders and .tempstate files, our
    .partial- files. The last complete checkpoint stays, so a rerun resumes."""
    import shutil

    for path in sorted(out.rglob("*"), reverse=True):
        if "_temp" in path.name or ".tempstate" in path.name or atomic.is_partial(path):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def train(config: TrainConfig) -> dict:
    import tf_keras as keras

    from edge_fer.data.tfdata import make_dataset
    from edge_fer.evaluate import classification_metrics, predict_keras
    from edge_fer.models import create_model
    from edge_fer.versions import software_versions

    placement = create_placement(config.train.distribute, config.train.peer_timeout_s)  # before any other TensorFlow work
    stages = plan_stages(config)
    check_label_drawing(config.train.draw_labels, config.data.label_mode)
    check_recipe(config.train)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    check_shared_folder(placement, out)
    if placement.is_chief:
        save_toml(config, out / "config.toml")
    started = time.perf_counter()
    dataset = load_dataset(config.data.dataset, config.data.root, label_mode=config.data.label_mode, **config.data.options)
    train_split, valid_split, test_split = train_valid_test(dataset, config.data.validation_fraction, config.train.seed)
    soft = train_split.soft_labels is not None
    recipe = config.train
    # label smoothing, mixup and cutmix need a label per class: hard labels become one-hot rows
    one_hot = len(dataset.classes) if not soft and (recipe.label_smoothing > 0 or recipe.mixup > 0 or recipe.cutmix > 0) else 0
    keras.utils.set_random_seed(config.train.seed)
    init_seed = config.train.seed if config.train.init_seed is None else config.train.init_seed
    def build(weights: str):
        return create_model(config.model.variant, len(dataset.classes), config.model.image_size, weights=weights,
                            dropout=config.model.dropout, seed=init_seed, alpha=config.model.alpha)

    with scope_of(placement.strategy):
        model = build(config.model.weights)
    if init_seed != config.train.seed:
        keras.utils.set_random_seed(config.train.seed)  # dropout draws from the training seed, not the start's
    placement.build_plain = lambda: build("none")
    origin = model.edge_fer
    if config.model.init_from:
        origin = {**origin, "init_from": warm_start(model, config.model.init_from)}
    size, batch = config.model.image_size, config.train.batch_size
    steps = config.train.steps_per_epoch or int(np.ceil(len(train_split) / batch))
    train_data = make_dataset(train_split, size, batch, training=True, seed=config.train.seed,
                              augment=config.train.augment, soft_labels=soft, repeat=True,
                              draw_labels=config.train.draw_labels, one_hot=one_hot, mixup=recipe.mixup,
                              erasing=recipe.erasing, cutmix=recipe.cutmix)
    valid_data = make_dataset(valid_split, size, 64, training=False, soft_labels=soft, one_hot=one_hot)
    calibration = make_dataset(train_split, size, 32, training=True, seed=config.train.seed, soft_labels=soft).take(20)
    if placement.multi_worker:
        train_data, valid_data = shard_by_batch_share(train_data), shard_by_batch_share(valid_data)
    class_weight = (balanced_class_weights(train_split.labels, len(dataset.classes), config.train.class_weight_power)
                    if config.train.class_weights else None)
    loss = (keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing) if soft or one_hot
            else keras.losses.SparseCategoricalCrossentropy())
    metric = "accuracy"
    teachers = start_distillation(config, dataset.classes)
    if teachers:
        train_data = with_teacher_targets(train_data, teachers, len(dataset.classes), class_weight)
        class_weight = None  # now per-sample weights inside the batches
        loss = make_distillation_loss(len(dataset.classes), config.train.distill.temperature, config.train.distill.weight)
        metric = make_accuracy(len(dataset.classes))
    ui.log(f"training {config.model.variant} at {size}px on {dataset.display_name} ({len(train_split)} train, "
           f"{len(valid_split)} valid), schedule {config.train.schedule}, pretrained={origin['pretrained']}")
    try:
        for stage in stages:
            run_stage(stage, model, train_data, valid_data, out / "stages" / stage.name, steps, class_weight, loss,
                      placement, calibration, metric)
    except Exception as error:
        if placement.multi_worker and is_peer_loss(error):
            restart_after_peer_loss(error, config.train.max_restarts)
        if out_of_disk(error):
            remove_partial_checkpoints(out)
            raise UserError(f"no space left on the disk of {out}: free some, or train into another folder; a rerun "
                            "resumes from the last complete epoch") from None
        raise
    model = local_copy(placement, model)  # collective: every worker is past its last read of the cluster token
    if not placement.is_chief:
        return worker_record(placement, model, out)
    forget_cluster_token(placement, out)
    metrics = {"valid": classification_metrics(valid_split.labels, predict_keras(model, valid_split.images, size), dataset.classes)}
    test_split = scoring_test_split(config.data, dataset, test_split)
    if test_split is not None:
        metrics["test"] = classification_metrics(test_split.labels, predict_keras(model, test_split.images, size), dataset.classes)
    if teachers:
        origin = {**origin, "distillation": teacher_report(
            teacher_paths(config.train.distill.teacher), teachers, test_split.images if test_split else None,
            test_split.labels if test_split else None, dataset.classes, config.train.distill)}
    record = {
        "format": "keras",
        "classes": list(dataset.classes),
        "image_size": size,
        "input_shape": [size, size, 3],
        "preprocessing": {**PREPROCESSING, "source_channels": int(dataset.image_shape[-1])},
        **origin,
        "dataset": {"name": dataset.name, "synthetic": dataset.synthetic, "root": dataset.root,
                    "label_mode": dataset.label_mode, "options": config.data.options,
                    "sizes": {"train": len(train_split), "valid": len(valid_split), "test": len(test_split) if test_split else 0}},
        "schedule": config.train.schedule,
        "distribute": {"mode": placement.mode, "workers": placement.workers},
        "weights_sha256": weights_digest(model.get_weights()),
        "metrics": metrics,
        "train_seconds": round(epoch_seconds(out), 1),  # every epoch, across resumed sessions
        "wall_seconds": round(time.perf_counter() - started, 1),  # this invocation
        "config": to_dict(config),
        "versions": software_versions(),
    }
    save_model(without_optimizer(model, placement.build_plain), out / "model.keras")
    atomic.write_json(out / "model.json", record)
    return record


def worker_record(placement: Placement, model, out: Path) -> dict:
    """A worker that is not the chief writes no model: only its own weights' digest, to compare with the chief's."""
    record = {"task_index": placement.task_index, "workers": placement.workers, "chief": False,
              "weights_sha256": weights_digest(model.get_weights())}
    atomic.write_json(out / f"worker-{placement.task_index}.json", record)
    return record


def start_distillation(config: TrainConfig, classes) -> list:
    """The teacher models when train.distill names any (checked before any training), else []."""
    paths = teacher_paths(config.train.distill.teacher)
    if not paths:
        return []
    check_distill(config.train.distill)
    teachers = load_teachers(paths, classes, config.model.image_size)
    ui.log(f"distilling from {len(teachers)} teacher(s): {', '.join(paths)} (T={config.train.distill.temperature}, "
           f"weight {config.train.distill.weight})")
    return teachers


def epoch_seconds(out: Path) -> float:
    from edge_fer.train.callbacks import read_history

    return sum(record.get("seconds", 0.0) for path in sorted((out / "stages").glob("*/history.jsonl"))
               for record in read_history(path))


def save_model(model, path: Path) -> None:
    with atomic.replacing(path) as temporary:
        model.save(str(temporary))


