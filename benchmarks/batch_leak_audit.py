"""Batch-leak audit of the published PAtt-Lite head (`patt_lite_paper`).

The official notebook applies Attention([x, x]) to a 2-D (batch, 32) tensor. Old TensorFlow computed that as
softmax(X Xᵀ / √d) X over the *batch*, so an image's prediction depends on the other images in its batch. This
scores one trained patt_lite_paper model, with attention computed exactly that way, three times on a test split:
in class-sorted batches (what the official data script produces: it reads one class folder after another), in
shuffled batches, and one image at a time (batch 1: the attention is then an identity, as on a Jetson).

    python benchmarks/batch_leak_audit.py MODEL_DIR --dataset ferplus --root ../shared/datasets/ferplus \
        --label-mode majority [--batch-size 8] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import edge_fer  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)


def softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


def batch_attention(features: np.ndarray) -> np.ndarray:
    """softmax(X Xᵀ / √d) X across the batch: what old TensorFlow did with a 2-D Attention([x, x])."""
    return softmax(features @ features.T / np.sqrt(features.shape[1])) @ features


def head_parts(model):
    """(features before the attention, per image; the final Dense's kernel and bias)."""
    import tf_keras as keras

    attention = model.get_layer("attention")
    features = keras.Model(model.input, attention.input[0])
    kernel, bias = model.get_layer("predictions").get_weights()
    return features, kernel, bias


def score_in_batches(features: np.ndarray, kernel, bias, order: np.ndarray, batch_size: int) -> np.ndarray:
    predictions = np.empty(len(features), np.int64)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        logits = batch_attention(features[index]) @ kernel + bias
        predictions[index] = logits.argmax(axis=1)
    return predictions


def audit(model_dir: str, dataset_spec: dict, batch_size: int, seed: int = 0) -> dict:
    from edge_fer.data import load_dataset
    from edge_fer.data.preprocess import to_model_input
    from edge_fer.train.trainer import load_model

    model, meta = load_model(model_dir)
    if meta.get("variant") not in (None, "patt_lite_paper"):
        raise SystemExit(f"error: {model_dir} is a {meta.get('variant')} model; the audit needs patt_lite_paper")
    dataset = load_dataset(dataset_spec["name"], dataset_spec.get("root"), label_mode=dataset_spec.get("label_mode"),
                           **dataset_spec.get("options", {}))
    split = dataset.splits["test"]
    feature_model, kernel, bias = head_parts(model)
    size = int(model.input_shape[1])
    features = np.concatenate([np.asarray(feature_model(to_model_input(split.images[i:i + 64], size), training=False))
                               for i in range(0, len(split), 64)])
    orders = {
        "class-sorted batches": np.argsort(split.labels, kind="stable"),
        "shuffled batches": np.random.default_rng(seed).permutation(len(split)),
    }
    results = {name: float(np.mean(score_in_batches(features, kernel, bias, order, batch_size) == split.labels))
               for name, order in orders.items()}
    results["batch 1"] = float(np.mean(score_in_batches(features, kernel, bias, np.arange(len(split)), 1) == split.labels))
    return {"model": str(model_dir), "dataset": dataset.name, "label_mode": dataset.label_mode, "images": len(split),
            "batch_size": batch_size, "accuracy": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--dataset", default="ferplus")
    parser.add_argument("--root")
    parser.add_argument("--label-mode")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()
    result = audit(args.model, {"name": args.dataset, "root": args.root, "label_mode": args.label_mode}, args.batch_size)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    for name, accuracy in result["accuracy"].items():
        print(f"{name:22s} {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
