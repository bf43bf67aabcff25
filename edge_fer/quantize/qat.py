"""Quantization-aware training with tensorflow-model-optimization.

tfmot's default 8-bit scheme knows Conv2D/DepthwiseConv2D/Dense, folds BatchNorm into the conv before it and
splits SeparableConv2D. Our input scaling (Rescaling) and the per-sample attention (TokenSelfAttention) get
an output-only QuantizeConfig: their inputs are already quantized by the layer before, their outputs get a
learned 8-bit range. Ranges inside the attention (scores, softmax) are left to the converter's calibration
on real images, so the converted TFLite is fully integer.

TensorRT's explicit quantization accepts only symmetric ranges (onnx-tensorrt rejects a non-zero zero point on
every QuantizeLinear/DequantizeLinear). The ONNX export converts the QDQ graph to that form whatever the QAT
scheme; `qat.symmetric = true` also trains with it (zero point 0 on every activation and output range). The
default keeps tfmot's asymmetric ranges: on FERPlus they were better for LiteRT (tflite-int8-qat 0.8218 against
0.8199) and no worse after the conversion (onnx-int8-qdq 0.8221 against 0.8215).
"""

from __future__ import annotations

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from edge_fer.models.layers import FlatTokens, TokenGroups, TokenSelfAttention

quantizers = tfmot.quantization.keras.quantizers


class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """No weights to quantize; one 8-bit range on the layer's output (made symmetric by make_symmetric)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class NoQuantizeConfig(OutputQuantizeConfig):
    """Nothing to quantize: what tfmot's registry gives Keras' Reshape, for our reshapes."""

    def get_output_quantizers(self, layer):
        return []


OUTPUT_ONLY = (keras.layers.Rescaling, TokenSelfAttention)


def quantize_scope():
    return tfmot.quantization.keras.quantize_scope(
        {"OutputQuantizeConfig": OutputQuantizeConfig, "TokenSelfAttention": TokenSelfAttention, "FlatTokens": FlatTokens,
         "TokenGroups": TokenGroups, "NoQuantizeConfig": NoQuantizeConfig})


def annotate(layer):
    """Every layer annotated for quantization, ours with their QuantizeConfigs, except TokenGroups: a reshape has
    nothing to quantize (tfmot gives Keras' Reshape no quantizers either) and, left unwrapped, it does not shift
    the wrapper numbering by which QAT weight files written before it existed are keyed."""
    if isinstance(layer, OUTPUT_ONLY):
        return tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=OutputQuantizeConfig())
    if isinstance(layer, FlatTokens):
        return tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=NoQuantizeConfig())
    if isinstance(layer, TokenGroups):
        return layer
    return tfmot.quantization.keras.quantize_annotate_layer(layer)


def activation_quantizers(model) -> list:
    """Every activation quantizer tfmot placed: the input's, each layer's activations and outputs."""
    found = []
    for layer in model.layers:
        found.append(getattr(layer, "quantizer", None))  # QuantizeLayer (the model input)
        found += [activation.quantizer for activation in getattr(layer, "_quantize_activations", [])]
        found += list(getattr(layer, "_output_quantizers", []))
    return [quantizer for quantizer in found if quantizer is not None]


def make_symmetric(model) -> int:
    """Symmetric ranges on every activation and output quantizer; returns how many. tfmot reads `symmetric` on
    each call, so this takes effect on the next forward pass: min = -max·128/127, which the converters turn into
    int8 zero point 0. Weight quantizers are symmetric already (tfmot's LastValueQuantizer, narrow range). The
    model input's quantizer (raw pixels 0-255, exact in int8 only at zero point -128) stays as it is: the
    TensorRT export drops that pair and lets the input scaling run in float."""
    changed = [quantizer for quantizer in activation_quantizers(model)
               if isinstance(quantizer, quantizers.MovingAverageQuantizer)]
    for quantizer in changed:
        quantizer.symmetric = True
    return len(changed)


def make_qat_model(model, symmetric: bool = False):
    """A QAT copy of a float Keras model (same weights), fake-quantized everywhere."""
    if any(isinstance(layer, keras.layers.Attention) for layer in model.layers):
        from edge_fer.errors import UserError

        raise UserError("patt_lite_paper's batch-wise Attention cannot be quantized per sample; use patt_lite")
    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with quantize_scope():
        qat_model = tfmot.quantization.keras.quantize_apply(annotated)
    if symmetric:
        make_symmetric(qat_model)
    return qat_model


FLOAT_FILE, WEIGHTS_FILE = "float.keras", "qat.weights.h5"


def save_qat_model(float_model, qat_model, folder) -> None:
    """tfmot's wrappers do not round-trip through .keras (QuantizeLayer variables go missing on load), so a
    QAT folder holds the float model it started from and the QAT weights; loading rebuilds the wrappers."""
    from pathlib import Path

    from edge_fer import atomic
    from edge_fer.train.trainer import save_model

    folder = Path(folder)
    save_model(float_model, folder / FLOAT_FILE)
    with atomic.replacing(folder / WEIGHTS_FILE) as temporary:
        qat_model.save_weights(str(temporary))


EMA_DECAY = 0.999  # tfmot's MovingAverageQuantizer (fixed in quant_ops.MovingAvgQuantize)
EMA_RANGE_SUFFIXES = ("/output_min:", "/output_max:", "/post_activation_min:", "/post_activation_max:",
                      "/pre_activation_min:", "/pre_activation_max:")


def moving_average_ranges(qat_model) -> list:
    """The min/max variables of tfmot's MovingAverageQuantizers (activations and outputs). Weight ranges
    (LastValueQuantizer) and the input's (AllValuesQuantizer) are not moving averages and are left alone."""
    return [variable for variable in qat_model.variables if any(suffix in variable.name for suffix in EMA_RANGE_SUFFIXES)]


def calibrate_ranges(qat_model, batches, steps: int) -> int:
    """Set every moving-average range to the mean of its batches' min and max; returns how many were set.

    tfmot starts these ranges at [-6, 6] and moves them with decay 0.999 and no debiasing, so after a few
    hundred steps a ReLU6 output still has min ≈ -6·0.999^steps (-3.3 after 600): a third of the int8 levels
    go to values that never occur, and onnxruntime cannot drop the Clip before the QuantizeLinear, so the QDQ
    convs stay float. Each forward pass moves a range by (1 - decay)·(batch value - range), so the batch
    value is read back from the move; the range is then set to the mean so far, which the next pass's fake
    quantization uses (a zeroed, debiased average would clip every layer to a fraction of its range early on
    and make the layers after it see too little)."""
    import numpy as np

    from edge_fer import ui

    ranges = moving_average_ranges(qat_model)
    totals = [np.zeros(variable.shape, np.float64) for variable in ranges]
    seen = 0
    with ui.progress() as bar:
        task = bar.add_task("calibrating quantization ranges", total=steps)
        for _, (images, _labels) in zip(range(steps), batches):
            before = [variable.numpy().astype(np.float64) for variable in ranges]
            qat_model(images, training=True)
            seen += 1
            for variable, total, start in zip(ranges, totals, before):
                observed = (variable.numpy() - EMA_DECAY * start) / (1.0 - EMA_DECAY)
                # tfmot takes min(batch min, 0) and max(batch max, 0); the clamp removes float32 rounding (1e-5)
                total += np.minimum(observed, 0.0) if variable.name.endswith("_min:0") else np.maximum(observed, 0.0)
                variable.assign((total / seen).astype(np.float32))
            bar.advance(task)
    return len(ranges)


def freeze_batchnorm(model) -> None:
    """BatchNorm in inference mode during QAT (moving statistics fixed): the usual recipe, and it keeps the
    QAT model closest to the float one it starts from."""
    for layer in model.layers:
        if isinstance(getattr(layer, "layer", layer), keras.layers.BatchNormalization):
            layer.trainable = False


def load_qat_model(folder):
    """(QAT Keras model, its model.json) from a folder written by `edge-fer qat`."""
    import json
    from pathlib import Path

    from edge_fer.errors import UserError
    from edge_fer.models.loading import load_model

    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / FLOAT_FILE).is_file():
        raise UserError(f"{folder} is not a QAT model folder ({FLOAT_FILE} and {WEIGHTS_FILE}); run `edge-fer qat` first")
    float_model, _ = load_model(folder / FLOAT_FILE)
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    model = make_qat_model(float_model, symmetric=(meta.get("qat_config") or {}).get("symmetric", False))
    model.load_weights(str(folder / WEIGHTS_FILE))
    return model, meta


def run_qat(config) -> dict:
    """Fine-tune a trained float model with fake quantization; saves model.keras and model.json in config.out."""
    import time
    from pathlib import Path

    import numpy as np

    from edge_fer import atomic, ui
    from edge_fer.config import save_toml, to_dict
    from edge_fer.data import load_dataset
    from edge_fer.data.tfdata import make_dataset
    from edge_fer.evaluate import classification_metrics, predict_keras
    from edge_fer.models.loading import architecture, build_model, load_model
    from edge_fer.models.weights import without_optimizer
    from edge_fer.train.callbacks import EpochLog
    from edge_fer.train.splits import scoring_test_split, train_valid_test
    from edge_fer.train.trainer import save_model

    started = time.perf_counter()
    float_model, meta = load_model(config.model)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_toml(config, out / "config.toml")
    data = config.data
    dataset = load_dataset(data.dataset, data.root, label_mode=data.label_mode, **data.options)
    train, valid, test = train_valid_test(dataset, data.validation_fraction, config.seed)
    size = int(float_model.input_shape[1])
    keras.utils.set_random_seed(config.seed)
    qat_model = make_qat_model(float_model, config.symmetric) if config.fake_quant else float_model
    if config.freeze_batchnorm:
        freeze_batchnorm(qat_model)
    soft = train.soft_labels is not None
    loss = keras.losses.CategoricalCrossentropy() if soft else keras.losses.SparseCategoricalCrossentropy()
    qat_model.compile(keras.optimizers.Adam(config.learning_rate, global_clipnorm=1.0), loss=loss, metrics=["accuracy"])
    steps = config.steps_per_epoch or int(np.ceil(len(train) / config.batch_size))
    if config.calibration_steps and config.fake_quant:
        ui.log(f"calibrating quantization ranges: {config.calibration_steps} batches")
        calibrate_ranges(qat_model, make_dataset(train, size, config.batch_size, training=True, seed=config.seed,
                                                 soft_labels=soft, repeat=True), config.calibration_steps)
    history = out / "history.jsonl"
    history.unlink(missing_ok=True)
    ui.log(f"{'QAT' if config.fake_quant else 'float fine-tune (control, no fake quantization)'} of {config.model} on {dataset.display_name}: {config.epochs} epochs at lr {config.learning_rate}")
    qat_model.fit(make_dataset(train, size, config.batch_size, training=True, seed=config.seed, augment=config.augment,
                               soft_labels=soft, repeat=True),
                  validation_data=make_dataset(valid, size, 64, training=False, soft_labels=soft),
                  epochs=config.epochs, steps_per_epoch=steps, verbose=0,
                  callbacks=[EpochLog("qat", config.epochs, history, steps)])
    metrics = {"valid": classification_metrics(valid.labels, predict_keras(qat_model, valid.images, size), dataset.classes)}
    test = scoring_test_split(data, dataset, test)  # vote-distribution training still scores on majority
    if test is not None:
        metrics["test"] = classification_metrics(test.labels, predict_keras(qat_model, test.images, size), dataset.classes)
    if config.fake_quant:
        save_qat_model(float_model, qat_model, out)
    else:  # the float model itself was compiled and fine-tuned
        save_model(without_optimizer(float_model, lambda: build_model(architecture(meta, Path(config.model)))), out / "model.keras")
    record = {**meta, "format": "keras-qat" if config.fake_quant else "keras", "qat": config.fake_quant, "float_model": str(config.model), "metrics": metrics,
              "float_metrics": meta.get("metrics"), "qat_config": to_dict(config),
              "qat_seconds": round(time.perf_counter() - started, 1)}
    atomic.write_json(out / "model.json", record)
    return record
