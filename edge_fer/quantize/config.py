"""QAT settings: a few epochs at a low learning rate, starting from the trained float model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_fer.data.tfdata import AugmentConfig
from edge_fer.train.config import DataSection


@dataclass
class QatConfig:
    model: str = "runs/train"  # the trained float model (folder or model.keras)
    data: DataSection = field(default_factory=DataSection)
    epochs: int = 3
    learning_rate: float = 1e-5
    batch_size: int = 32
    steps_per_epoch: int | None = None
    seed: int = 0
    freeze_batchnorm: bool = True
    calibration_steps: int = 500  # forward passes that settle the quantization ranges before fine-tuning
    # true: activation zero points 0 in training too (TensorRT's scheme); false (default): tfmot's asymmetric
    # ranges, which LiteRT uses best. The ONNX export makes the QDQ graph symmetric either way (qdq_to_tensorrt_qdq);
    # on FERPlus the asymmetric model gave tflite-int8-qat 0.8218 and onnx-int8-qdq 0.8221, the symmetric 0.8199/0.8215
    symmetric: bool = False
    fake_quant: bool = True  # false: the same fine-tune in float, a control that tells QAT's gain from extra training
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    out: str = "runs/qat"


def trained_data(model: str | Path) -> dict:
    """The [data] table the model was trained with (from its model.json): QAT fine-tunes on the same data unless
    told otherwise. Empty where the model has no record."""
    import json

    model = Path(model)
    model_json = (model if model.is_dir() else model.parent) / "model.json"
    trained_on = json.loads(model_json.read_text()).get("dataset", {}) if model_json.is_file() else {}
    return {k: v for k, v in {"dataset": trained_on.get("name"), "root": trained_on.get("root"),
                              "label_mode": trained_on.get("label_mode"), "options": trained_on.get("options")}.items() if v}
