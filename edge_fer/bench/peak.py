"""`edge-fer bench --peak`: the host's attainable multiply-accumulate rate, per runtime and precision, measured
the way artifacts are (same runner, threads and timing) on a model that is nothing but wide 1×1 convolutions
(plain matrix products, the kernel every runtime makes fastest; measured here, 3×3 convolutions reached half
the fp32 rate of 1×1, so a 3×3 "peak" would let real models score above 100%).
The report divides each artifact's achieved rate (MACs / p50) by the peak of its runtime and precision: how much
of what this machine can do the model actually uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_fer.formats import FORMATS, get_format, peak_of
from edge_fer.status import PASSED

PEAK_VARIANT = "peak-conv1x1"
PEAK_FORMATS = tuple(dict.fromkeys(f.peak for f in FORMATS if f.peak))  # the formats artifacts are compared with
SIZE, CHANNELS, LAYERS = 28, 512, 8  # 8 × 28·28·512·512 ≈ 1.64 GMAC per image: compute-bound on any CPU


def peak_model():
    import tf_keras as keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(CHANNELS, 1, activation="relu")(inputs)
    for _ in range(LAYERS):
        x = keras.layers.Conv2D(CHANNELS, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(8, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=PEAK_VARIANT)


def peak_payloads(model, calibration) -> dict:
    """The peak model in every peak format (the `peak` column of the format table): format name -> bytes."""
    from edge_fer.export.converters import keras_to_onnx, keras_to_tflite, onnx_to_int8_ptq

    onnx_fp32 = keras_to_onnx(model)
    builders = {"tflite-fp32": lambda: keras_to_tflite(model, "fp32"),
                "tflite-int8": lambda: keras_to_tflite(model, "int8", calibration, int8_io=False),
                "onnx-fp32": lambda: onnx_fp32.SerializeToString(),
                "onnx-int8-ptq": lambda: onnx_to_int8_ptq(onnx_fp32, calibration).SerializeToString()}
    missing = set(PEAK_FORMATS) - set(builders)
    if missing:
        raise ValueError(f"no peak kernel for {', '.join(sorted(missing))}: add one to bench.peak.peak_payloads")
    return {name: builders[name]() for name in PEAK_FORMATS}


def write_peak_artifacts(folder: Path) -> list[Path]:
    """The peak model in every PEAK_FORMATS format, each with the metadata bench reads (its MACs among them)."""
    import tf_keras as keras

    from edge_fer import atomic
    from edge_fer.artifacts import write_metadata
    from edge_fer.models.summary import model_summary

    keras.utils.set_random_seed(0)
    model = peak_model()
    calibration = np.random.default_rng(0).uniform(0, 255, (16, SIZE, SIZE, 3)).astype(np.float32)
    payloads = peak_payloads(model, calibration)
    record = {"variant": PEAK_VARIANT, "classes": [f"c{i}" for i in range(8)], "image_size": SIZE,
              "macs": model_summary(model)["macs"]}
    paths = []
    for name in PEAK_FORMATS:
        path = folder / f"peak-{name}{get_format(name).suffix}"
        atomic.write_bytes(path, payloads[name])
        write_metadata(path, {**record, "format": name})
        paths.append(path)
    return paths


def macs_per_second(row: dict) -> float | None:
    macs = (row.get("metrics") or {}).get("macs")
    p50 = row.get("p50_ms")
    return macs / (p50 / 1000.0) if macs and p50 else None


def peak_rates(rows: list[dict]) -> dict[tuple[str, str], float]:
    """(target, peak format) -> MAC/s of the newest passed peak row."""
    rates = {}
    for row in rows:
        rate = macs_per_second(row) if row.get("variant") == PEAK_VARIANT and row.get("status") == PASSED else None
        if rate:
            rates[(row["target"], row["format"])] = rate
    return rates


def mac_share(row: dict, rates: dict[tuple[str, str], float]) -> float | None:
    peak = rates.get((row["target"], peak_of(row["format"])))
    achieved = macs_per_second(row)
    return achieved / peak if peak and achieved else None
