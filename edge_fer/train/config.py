"""Training configuration. Defaults are the paper's recipe (and the official notebook's values where the
paper gives none); `from_scratch` is the schedule for machines without pretrained weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge_fer.data.tfdata import AugmentConfig
from edge_fer.errors import UserError
from edge_fer.train.distill import DistillSection

# Backbone layers unfrozen in stage 2, per dataset (paper, section IV).
PAPER_FINETUNE_LAYERS = {"rafdb": 59, "fer2013": 46, "ferplus": 49, "ckplus": 40}


@dataclass
class DataSection:
    dataset: str = "synthetic"
    root: str | None = None
    label_mode: str | None = None
    options: dict = field(default_factory=dict)
    validation_fraction: float = 0.1  # carved from train (stratified) when the dataset has no 'valid' split


@dataclass
class ModelSection:
    variant: str = "patt_lite"
    image_size: int = 224
    weights: str = "imagenet"  # 'imagenet', 'none' or the path of MobileNet weights
    dropout: float = 0.2
    alpha: float = 1.0  # MobileNet's width multiplier; the patch block and the attention head narrow with it
    init_from: str | None = None  # a saved model (.keras or its folder): every layer with the same name and weight shapes starts from it


@dataclass
class HeadStage:
    """Stage 1: backbone frozen, Adam, reduce-on-plateau, early stopping with the best weights restored."""

    epochs: int = 100
    learning_rate: float = 1e-3
    plateau_patience: int = 3
    plateau_factor: float = 0.1
    min_learning_rate: float = 1e-6
    early_stop_patience: int = 5
    min_delta: float = 0.003


@dataclass
class FinetuneStage:
    """Stage 2: last N backbone layers unfrozen (BatchNorm stays frozen), inverse-time decay from 1e-5."""

    epochs: int = 100
    learning_rate: float = 1e-5
    unfreeze_layers: int | None = None  # None: the paper's number for the dataset, else 49
    decay_steps: float = 80.0
    decay_rate: float = 1.0
    early_stop_patience: int = 20
    min_delta: float = 0.003


@dataclass
class ScratchStage:
    """One stage, every layer trainable from the start: Adam with linear warm-up then cosine decay."""

    epochs: int = 30
    learning_rate: float = 2e-3
    warmup_epochs: float = 1.0
    final_learning_rate_fraction: float = 0.01
    early_stop_patience: int | None = None


@dataclass
class TrainSection:
    schedule: Literal["two_stage", "from_scratch"] = "two_stage"
    batch_size: int = 8
    clipnorm: float = 1.0  # global gradient-norm clipping
    seed: int = 0
    # the seed of the random start of layers init_from does not fill (None: seed). Fine-tunes of one start that share
    # it and differ in seed differ only in data order, augmentation and dropout, so their weights can be averaged
    init_seed: int | None = None
    class_weights: bool = True
    class_weight_power: float = 1.0  # 1: n / (k · count); 0.5: its square root, gentler on rare classes
    # with data.label_mode = "probability": train on a label drawn from each image's vote distribution, anew every
    # epoch (Barsoum et al.'s probabilistic label drawing), instead of cross-entropy on the distribution itself
    draw_labels: bool = False
    # recipe options for training from scratch; each is off at its default
    label_smoothing: float = 0.0  # cross-entropy against (1 - s) · target + s / classes
    mixup: float = 0.0  # Beta(a, a) of mixup (Zhang et al. 2018): each image blended with another, labels alike
    erasing: float = 0.0  # probability of random erasing (Zhong et al. 2020): a rectangle of 2-25% of the image set to noise
    cutmix: float = 0.0  # Beta(a, a) of CutMix (Yun et al. 2019): a box of another image pasted in, labels by area
    # momentum of an exponential moving average of the trainable weights, kept by the optimizer after every step
    # (0: off; 0.999 averages over about 1,000 steps): validation, the best-epoch checkpoint and the saved model
    # use the average
    ema: float = 0.0
    steps_per_epoch: int | None = None  # cap, for quick runs; None = the whole train split
    # "none", "mirrored" (every local GPU) or "multi_worker" (the TF_CONFIG cluster); false/true mean none/mirrored
    distribute: bool | Literal["none", "mirrored", "multi_worker"] = False
    max_restarts: int = 3  # multi_worker: times a worker re-executes itself after another worker went away
    peer_timeout_s: float = 600.0  # multi_worker: how long a worker waits for the others to join before it gives up
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillSection = field(default_factory=DistillSection)  # knowledge distillation from trained teachers
    head: HeadStage = field(default_factory=HeadStage)
    finetune: FinetuneStage = field(default_factory=FinetuneStage)
    scratch: ScratchStage = field(default_factory=ScratchStage)


@dataclass
class TrainConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    out: str = "runs/train"

    def finetune_layers(self) -> int:
        configured = self.train.finetune.unfreeze_layers
        return configured if configured is not None else PAPER_FINETUNE_LAYERS.get(self.data.dataset, 49)


def check_recipe(train: TrainSection) -> None:
    if not 0.0 <= train.label_smoothing < 1.0:
        raise UserError(f"train.label_smoothing must be in [0, 1), not {train.label_smoothing}")
    if train.mixup < 0:
        raise UserError(f"train.mixup is the Beta(a, a) parameter: 0 (off) or more, not {train.mixup}")
    if train.cutmix < 0:
        raise UserError(f"train.cutmix is the Beta(a, a) parameter: 0 (off) or more, such as 1.0, not {train.cutmix}")
    if not 0.0 <= train.erasing <= 1.0:
        raise UserError(f"train.erasing is a probability: from 0 to 1, not {train.erasing}")
    if not 0.0 <= train.ema < 1.0:
        raise UserError(f"train.ema is the moving average's momentum: 0 (off) or in (0, 1) such as 0.999, not {train.ema}")
    check_scratch_schedule(train.scratch)


def check_scratch_schedule(scratch: ScratchStage) -> None:
    """The warm-up must end inside the stage and the cosine must decay (or stay flat), never rise."""
    if scratch.learning_rate <= 0:
        raise UserError(f"train.scratch.learning_rate must be above 0, not {scratch.learning_rate}")
    if scratch.warmup_epochs < 0 or (scratch.epochs > 0 and scratch.warmup_epochs > scratch.epochs):
        raise UserError(f"train.scratch.warmup_epochs must be from 0 to train.scratch.epochs "
                        f"({scratch.epochs}), not {scratch.warmup_epochs}")
    if not 0.0 <= scratch.final_learning_rate_fraction <= 1.0:
        raise UserError(f"train.scratch.final_learning_rate_fraction is the last rate's share of the first: from 0 "
                        f"to 1 (1: a flat rate), not {scratch.final_learning_rate_fraction}")


def check_label_drawing(draw_labels: bool, label_mode: str | None) -> None:
    if draw_labels and not (label_mode or "").startswith("probability"):
        raise UserError(f"train.draw_labels draws from vote distributions: set data.label_mode = \"probability\" "
                        f"(it is {label_mode or 'the dataset default'})")
