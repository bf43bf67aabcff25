"""`edge-fer debug precision`: which layers a quantized file loses its accuracy in. The quantized file and its float
reference run on the same images; every layer's output is compared (taps.py lines the layers up), and the layers
are ranked by the noise each ADDS: its output's noise-to-signal ratio minus the ratio of the layer before it. The
error a layer inherits is in its SQNR, not in what it adds, so an early culprit is not hidden by the later layers
that carry its error on.

Per layer, over every element of every image (accumulated, so memory stays one batch):
- SQNR, dB: −10·log10 of the mean over channels of Σ (quantized − ref)² / Σ ref², capped at ±100 dB;
- cosine similarity of the two outputs;
- max |quantized − ref| and that error over the layer's output range in the reference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_fer.errors import UserError

SQNR_CAP_DB = 100.0


@dataclass
class LayerError:
    """Sums over every element of every image, per channel (the last axis) where it matters: an outlier channel
    can hold most of a layer's signal, so one ratio over all channels would hide that the others were crushed."""

    signal: np.ndarray | None = None  # Σ ref² per channel
    noise: np.ndarray | None = None  # Σ (q − ref)² per channel
    dot: float = 0.0  # Σ ref·q
    quantized: float = 0.0  # Σ q²
    max_abs: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, reference: np.ndarray, quantized: np.ndarray) -> None:
        """Arrays with channels last, any number of leading axes."""
        channels = reference.shape[-1] if reference.ndim > 1 else 1
        reference = reference.astype(np.float64).reshape(-1, channels)
        quantized = quantized.astype(np.float64).reshape(-1, channels)
        difference = quantized - reference
        signal, noise = np.sum(reference ** 2, axis=0), np.sum(difference ** 2, axis=0)
        self.signal = signal if self.signal is None else self.signal + signal
        self.noise = noise if self.noise is None else self.noise + noise
        self.dot += float(np.sum(reference * quantized))
        self.quantized += float(np.sum(quantized ** 2))
        self.max_abs = max(self.max_abs, float(np.abs(difference).max(initial=0.0)))
        self.low = min(self.low, float(reference.min(initial=math.inf)))
        self.high = max(self.high, float(reference.max(initial=-math.inf)))

    def sqnr_db(self) -> float:
        """From the mean over channels of noise/signal: every channel counts alike, whatever its scale. Channels
        that are (almost) always zero in the reference are left out: they carry no signal to lose."""
        if self.signal is None or not np.any(self.noise > 0):
            return SQNR_CAP_DB
        live = self.signal > DEAD_CHANNEL * self.signal.max()
        if not np.any(live):
            return -SQNR_CAP_DB
        ratio = float(np.mean(self.noise[live] / self.signal[live]))
        return max(-SQNR_CAP_DB, min(SQNR_CAP_DB, -10 * math.log10(ratio))) if ratio > 0 else SQNR_CAP_DB

    def cosine(self) -> float | None:
        norms = math.sqrt(float(np.sum(self.signal)) * self.quantized) if self.signal is not None else 0.0
        return self.dot / norms if norms > 0 else None

    def range_error(self) -> float | None:
        span = self.high - self.low
        return self.max_abs / span if span > 0 else None


DEAD_CHANNEL = 1e-6  # a channel with less than this share of the strongest channel's signal power


@dataclass
class LayerRow:
    position: int  # place in the quantized file's execution order
    layer: str
    op: str
    sqnr_db: float
    added_db: float  # how much SQNR this layer loses against the layer before it
    added_noise: float  # the noise-to-signal ratio it adds: its own minus the layer before's, each at most 1
    noise_share: float  # its added noise over all layers' added noise: its part of the file's error
    cosine: float | None
    max_abs_error: float
    range_error: float | None  # max |error| / the reference output's range


def compare(quantized_tap, reference_tap, images: np.ndarray, progress=None) -> tuple[list[LayerRow], list[str]]:
    """Every layer both taps have, compared over `images` (model inputs, float); and the layers left out, and why."""
    reference_layers = {layer.key: layer for layer in reference_tap.layers}
    unaligned = unaligned_ops(quantized_tap, reference_tap)
    shared = [layer for layer in quantized_tap.layers if layer.key in reference_layers and layer.op not in unaligned]
    if not shared:
        raise UserError("the quantized file and the reference share no layer names: give the float model or file "
                        "the quantized one was made from")
    errors = {layer.key: LayerError() for layer in shared}
    skipped: dict[str, str] = {}
    step = max(quantized_tap.batch, 1)
    for start in range(0, len(images), step):
        batch = images[start:start + step]
        quantized, reference = quantized_tap(batch), reference_tap(batch)
        for layer in shared:
            q, r = channels_last(quantized_tap, quantized[layer.key]), channels_last(reference_tap, reference[layer.key])
            if q.size != r.size or q.shape[-1:] != r.shape[-1:]:
                skipped[layer.key] = f"output shape {q.shape[1:]} against the reference's {r.shape[1:]}"
                continue
            errors[layer.key].add(r, q)
        if progress:
            progress(len(batch))
    rows, before = [], SQNR_CAP_DB
    for layer in shared:
        if layer.key in skipped:
            continue
        error = errors[layer.key]
        sqnr = error.sqnr_db()
        added = max(0.0, noise_ratio(sqnr) - noise_ratio(before))
        label = reference_layers[layer.key].label or layer.label or layer.key
        rows.append(LayerRow(len(rows), label, layer.op, sqnr, max(0.0, before - sqnr), added, 0.0,
                             error.cosine(), error.max_abs, error.range_error()))
        before = sqnr
    total = sum(row.added_noise for row in rows)
    for row in rows:
        row.noise_share = row.added_noise / total if total > 0 else 0.0
    unmatched = [layer.key for layer in quantized_tap.layers if layer.key not in reference_layers]
    notes = ([f"{key}: {why}" for key, why in skipped.items()] + [f"{key}: not in the reference" for key in unmatched]
             + [f"{op}: {count} in the quantized file, {unaligned[op]} in the reference; not lined up"
                for op, count in getattr(quantized_tap, "counts", {}).items() if op in unaligned])
    return rows, notes


def unaligned_ops(quantized_tap, reference_tap) -> dict[str, int]:
    """Op types counted differently in two graphs keyed by op and count (ONNX): their n-th ops are not the same."""
    mine, theirs = getattr(quantized_tap, "counts", None), getattr(reference_tap, "counts", None)
    if mine is None or theirs is None:
        return {}
    return {op: theirs.get(op, 0) for op, count in mine.items() if theirs.get(op, 0) != count}


def noise_ratio(sqnr_db: float) -> float:
    """Noise over signal, at most 1: a signal already lost to noise cannot be lost again, so the layers after the
    one that destroyed it add nothing, whatever they do to the ratio."""
    return min(1.0, 10 ** (-sqnr_db / 10))


def channels_last(tap, values: np.ndarray) -> np.ndarray:
    """ONNX feature maps are NCHW: channels to the last axis, as TFLite and Keras have them."""
    return np.moveaxis(values, 1, -1) if getattr(tap, "channels_first", False) and values.ndim == 4 else values


def ranked(rows: list[LayerRow]) -> list[LayerRow]:
    """The most added noise first; ties by the lower SQNR. Small noises add up along a model, so a layer's added
    noise is its part of the output's error; ranking by SQNR instead would name the last layers, which inherit it."""
    return sorted(rows, key=lambda row: (-row.added_noise, row.sqnr_db))


def debug_precision(artifact: str | Path, reference: str | Path, images: np.ndarray, out: Path, progress=None) -> dict:
    """Compare on `images` (a split's images, resized here to the quantized file's input), rank, and write
    out/precision.json and out/precision-by-layer.png; return the JSON's content."""
    from edge_fer import atomic
    from edge_fer.data.preprocess import to_model_input
    from edge_fer.debug.taps import open_tap

    quantized_tap, reference_tap = open_tap(artifact), open_tap(reference)
    try:
        images = to_model_input(images, quantized_tap.size)
        if quantized_tap.size != reference_tap.size:
            raise UserError(f"the quantized file takes {quantized_tap.size} px images and the reference "
                            f"{reference_tap.size} px: give the reference it was made from")
        if (Path(artifact).suffix == ".onnx") != (Path(reference).suffix == ".onnx"):
            raise UserError("an ONNX file compares with an ONNX reference (its onnx-fp32 file): the layouts differ")
        rows, notes = compare(quantized_tap, reference_tap, images, progress)
    finally:
        quantized_tap.close()
        reference_tap.close()
    result = {"artifact": str(artifact), "reference": str(reference), "images": int(len(images)),
              "layers": [asdict(row) for row in rows], "ranked": [row.position for row in ranked(rows)],
              "notes": notes}
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "precision.json", result)
    plot_by_layer(rows, Path(artifact).name, out / "precision-by-layer.png")
    result["plot"] = str(out / "precision-by-layer.png")
    return result


def plot_by_layer(rows: list[LayerRow], title: str, path: Path) -> None:
    from edge_fer import atomic
    from edge_fer.report.plots import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    positions = range(len(rows))
    axes.plot(positions, [row.sqnr_db for row in rows], marker="o", label="SQNR of the layer's output, dB")
    axes.bar(positions, [row.added_db for row in rows], color="tab:red", alpha=0.5, label="SQNR lost at this layer, dB")
    axes.set_xticks(list(positions), [row.layer for row in rows], rotation=90, fontsize=6)
    axes.set_xlabel("layer, in execution order")
    axes.set_ylabel("dB")
    axes.set_title(f"{title}: quantization error by layer")
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic.replacing(path) as partial:
        figure.savefig(partial, dpi=120, format="png")
    plt.close(figure)
