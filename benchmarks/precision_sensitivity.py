"""Which layers' precision the accuracy depends on: for each Keras layer the int8 file has, the validation accuracy
when that layer ALONE stays fp32 (the rest int8) and when it ALONE is int8 (the rest fp32), against full int8 and
fp32; beside the ranking `edge-fer debug precision` gives from the layers' outputs. Every file is a `tflite-mixed`
conversion of the same float model with the same calibration images.

    python benchmarks/precision_sensitivity.py --model benchmarks/ferplus/vote --root ../shared/datasets/ferplus \
        --layers 8 --out benchmarks/ferplus/sensitivity

--layers N takes the N layers the debugger ranks worst (0: every layer). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer import atomic  # noqa: E402
from edge_fer.data.spec import DatasetSpec  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402


def accuracy_of(payload: bytes, images: np.ndarray, labels: np.ndarray) -> float:
    from edge_fer.compare import run_batches
    from edge_fer.runtimes import create_runtime

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(payload)
        with create_runtime("litert", path) as runner:
            return float(np.mean(np.argmax(run_batches(runner, images, 64), axis=1) == labels))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="the trained float model folder")
    parser.add_argument("--dataset", default="ferplus")
    parser.add_argument("--root", default="../shared/datasets/ferplus")
    parser.add_argument("--layers", type=int, default=8, help="the N layers debug precision ranks worst (0: all)")
    parser.add_argument("--calibration-images", type=int, default=300)
    parser.add_argument("--debug-images", type=int, default=200)
    parser.add_argument("--out", required=True, type=Path, help="OUT.json and OUT.md are written")
    args = parser.parse_args()
    from edge_fer.data.preprocess import to_model_input
    from edge_fer.debug.precision import LayerRow, debug_precision, ranked
    from edge_fer.debug.taps import OUTPUT_KEY
    from edge_fer.evaluate import wilson_interval
    from edge_fer.export import converters
    from edge_fer.models.loading import load_model

    model, _ = load_model(args.model)
    size = int(model.input_shape[1])
    dataset = DatasetSpec.of({"dataset": args.dataset, "root": args.root or None}).load()
    valid, train = dataset.splits["valid"], dataset.splits["train"]
    images = to_model_input(valid.images, size)
    rng = np.random.default_rng(0)
    calibration = to_model_input(train.images[rng.choice(len(train), args.calibration_images, replace=False)], size)
    full_int8 = converters.keras_to_tflite(model, "int8", calibration, int8_io=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model-tflite-int8.tflite"
        path.write_bytes(full_int8)
        debug = debug_precision(path, args.model, valid.images[: args.debug_images], Path(folder) / "debug")
    order = [row.layer for row in ranked([LayerRow(**row) for row in debug["layers"]]) if row.layer != OUTPUT_KEY]
    order = list(dict.fromkeys(order))
    layers = order[: args.layers] if args.layers else order
    calibrated = converters.calibrated_float(model, calibration)
    everything = list(dict.fromkeys(order))
    baseline = {"fp32": accuracy_of(converters.keras_to_tflite(model, "fp32"), images, valid.labels),
                "int8": accuracy_of(converters.quantize_except(calibrated, []), images, valid.labels)}
    rows = []
    for rank, layer in enumerate(layers, start=1):
        alone_float = converters.quantize_except(calibrated, converters.layer_outputs(calibrated, [layer]))
        others = [name for name in everything if name != layer]
        alone_int8 = converters.quantize_except(calibrated, converters.layer_outputs(calibrated, others))
        rows.append({"layer": layer, "error_rank": rank,
                     "valid_alone_fp32": accuracy_of(alone_float, images, valid.labels),
                     "valid_alone_int8": accuracy_of(alone_int8, images, valid.labels)})
        print(f"{layer}: alone fp32 {rows[-1]['valid_alone_fp32']:.4f}, alone int8 {rows[-1]['valid_alone_int8']:.4f}",
              flush=True)
    for row in rows:
        row["gain_kept_fp32"] = row["valid_alone_fp32"] - baseline["int8"]
        row["loss_alone_int8"] = baseline["fp32"] - row["valid_alone_int8"]
    by_gain = sorted(rows, key=lambda row: -row["gain_kept_fp32"])
    for place, row in enumerate(by_gain, start=1):
        row["sensitivity_rank"] = place
    low, high = wilson_interval(baseline["int8"], len(valid.labels))
    from scipy.stats import spearmanr

    agreement = spearmanr([row["error_rank"] for row in rows], [row["sensitivity_rank"] for row in rows])
    largest = max(max(abs(row["gain_kept_fp32"]), abs(row["loss_alone_int8"])) for row in rows)
    result = {"model": str(args.model), "valid_images": int(len(valid.labels)), "baseline": baseline, "rows": rows,
              "rank_correlation": {"spearman": float(agreement.statistic), "p": float(agreement.pvalue)},
              "largest_change": float(largest)}
    atomic.write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2))
    lines = [f"Precision sensitivity of `{args.model}` on the validation split ({len(valid.labels)} images): full "
             f"fp32 {baseline['fp32']:.4f}, full int8 {baseline['int8']:.4f} (95% interval {low:.3f}-{high:.3f}). Each "
             "layer alone kept fp32 (gain over full int8) and alone int8 (loss against full fp32); the error rank is "
             "`edge-fer debug precision`'s, the sensitivity rank orders the gains. Produced by:", "",
             "    python benchmarks/precision_sensitivity.py " + " ".join(sys.argv[1:]), "",
             "| layer | error rank | sensitivity rank | alone fp32 | gain | alone int8 | loss |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['layer']} | {row['error_rank']} | {row['sensitivity_rank']} | {row['valid_alone_fp32']:.4f} | "
                     f"{row['gain_kept_fp32']:+.4f} | {row['valid_alone_int8']:.4f} | {row['loss_alone_int8']:+.4f} |")
    lines += ["", f"{len(rows)} layers. The largest change any one layer's precision makes is {largest:+.4f} "
              f"({round(largest * len(valid.labels))} of {len(valid.labels)} images); the error and sensitivity rankings' "
              f"Spearman correlation is {agreement.statistic:.2f} (p = {agreement.pvalue:.2f})."]
    atomic.write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
