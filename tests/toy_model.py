"""The export tests' shared toy model: PAtt-Lite at 64 px trained on easy synthetic faces. Training it takes about
six minutes on two cores, most of the suite's longest path, so a copy trained with this very recipe is committed
in tests/fixtures/toy (weights only) and used while it still matches: the same recipe, the same synthetic images
and labels (their digest), weights that load. Anything else, and the model is trained here as before.

    python -m tests.toy_model [FOLDER]   # train it (or take FOLDER, trained with RECIPE) into tests/fixtures/toy
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

TOY_DIR = Path(__file__).resolve().parent / "fixtures" / "toy"
# Easy synthetic faces (no occluders) and ~1000 steps: a model confident enough that parity measures the
# export, not coin-flips between near-tied classes.
EXPORT_DATA = {"dataset": "synthetic", "options": {"train_count": 2100, "valid_count": 70, "test_count": 200, "occlusion": 0.0}}
RECIPE = {"data": EXPORT_DATA, "model": {"image_size": 64, "weights": "none"},
          "train": {"schedule": "from_scratch", "batch_size": 32, "scratch": {"epochs": 15}}}


def data_digest() -> str:
    from edge_fer.data.spec import DatasetSpec

    dataset = DatasetSpec.of(EXPORT_DATA).load()
    digest = hashlib.sha256()
    for split in ("train", "valid", "test"):
        digest.update(dataset.splits[split].images.tobytes())
        digest.update(dataset.splits[split].labels.tobytes())
    return digest.hexdigest()


def committed_toy_problem() -> str | None:
    """None when tests/fixtures/toy is this recipe's model on today's synthetic data, else why not."""
    from edge_fer.errors import UserError
    from edge_fer.models.loading import load_model

    record_file = TOY_DIR / "recipe.json"
    if not record_file.is_file():
        return "no committed toy model"
    record = json.loads(record_file.read_text())
    if record.get("recipe") != RECIPE:
        return "the committed toy model was trained with another recipe"
    if record.get("data_sha256") != data_digest():
        return "the synthetic images changed since the toy model was trained"
    try:
        load_model(TOY_DIR)
    except UserError as error:
        return f"the committed toy model no longer loads ({error})"
    return None


def recipe_config(out: Path):
    from edge_fer.config import from_dict
    from edge_fer.train.config import TrainConfig

    return from_dict(TrainConfig, {**RECIPE, "out": str(out)})


def toy_model(out: Path) -> None:
    """The toy model's folder at `out` (model.keras, model.json): copied when the committed one matches, else
    trained (tests/test_toy_model.py says which problem made it train)."""
    from edge_fer.train.trainer import train

    if committed_toy_problem() is None:
        shutil.copytree(TOY_DIR, out, ignore=shutil.ignore_patterns("recipe.json"))
    else:
        train(recipe_config(out))


def main() -> int:
    """Trains the toy (or takes ARGV[1], a folder this recipe trained) and writes it to tests/fixtures/toy."""
    import tempfile
    from dataclasses import asdict

    from edge_fer.models.loading import load_model
    from edge_fer.train.trainer import train

    with tempfile.TemporaryDirectory() as folder:
        trained = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(folder) / "float"
        if len(sys.argv) == 1:
            train(recipe_config(trained))
        expected = json.loads(json.dumps(asdict(recipe_config(trained))))
        recorded = json.loads((trained / "model.json").read_text())["config"]
        if any(recorded[key] != expected[key] for key in ("data", "model", "train")):
            raise SystemExit(f"{trained} was not trained with this recipe")
        model, _ = load_model(trained)  # rebuilt and never compiled: saved without optimizer state
        staging = Path(folder) / "toy"
        staging.mkdir()
        model.save(str(staging / "model.keras"))
        shutil.copy(trained / "model.json", staging / "model.json")
        (staging / "recipe.json").write_text(json.dumps({"recipe": RECIPE, "data_sha256": data_digest()}, indent=1) + "\n")
        shutil.rmtree(TOY_DIR, ignore_errors=True)
        shutil.copytree(staging, TOY_DIR)
    print(f"wrote {TOY_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
