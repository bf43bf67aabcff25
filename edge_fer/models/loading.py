"""Loading a saved model without running anything from the file.

A model file is data, never code. Keras rebuilds a model from the layer configs stored in a `.keras` file,
and a crafted config (a Lambda whose function names `os.system`) runs code while it does, safe mode or not; a
legacy `.h5` full model runs its lambdas too. So edge_fer never deserializes a stored architecture: it reads
`model.json` beside the file (variant, classes, input size, dropout), rebuilds that variant through the model
registry, and loads only the weight arrays from the file. A file whose weights do not fit the rebuilt model
is refused in one line.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from edge_fer.errors import UserError

WEIGHTS_ENTRY = "model.weights.h5"  # the weights inside a .keras archive
MAX_IMAGE_SIZE = 1024


def model_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if path.suffix == ".h5":
        raise UserError(f"{path}: legacy .h5 full models are refused (loading one runs code stored in it); "
                        "use a model.keras written by edge-fer with its model.json")
    if not path.is_file():
        raise UserError(f"model file {path} does not exist; pass a model.keras or the folder that holds it")
    return path


def read_model_json(path: Path) -> dict:
    meta_path = path.with_name("model.json")
    if not meta_path.is_file():
        raise UserError(f"{path}: no model.json beside it; edge-fer rebuilds a model from its model.json and "
                        "loads only the weights from the file")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{meta_path}: not valid JSON ({type(error).__name__})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object")
    return meta


def architecture(meta: dict, where: Path) -> dict:
    """The create_model arguments a model.json describes, checked."""
    from edge_fer.models import list_models

    variant = meta.get("variant")
    if variant not in list_models():
        raise UserError(f"{where}: model.json names variant {variant!r}; known: {', '.join(list_models())}")
    classes = meta.get("classes")
    num_classes = meta.get("num_classes", len(classes) if isinstance(classes, list) else None)
    image_size = meta.get("image_size")
    dropout = ((meta.get("config") or {}).get("model") or {}).get("dropout", 0.2)
    for name, value, low, high in (("num_classes", num_classes, 2, 1000), ("image_size", image_size, 32, MAX_IMAGE_SIZE)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise UserError(f"{where}: model.json {name} must be an integer from {low} to {high}, not {value!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise UserError(f"{where}: model.json dropout must be in [0, 1), not {dropout!r}")
    alpha = meta.get("alpha", 1.0)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.1 <= alpha <= 2.0:
        raise UserError(f"{where}: model.json alpha must be a number from 0.1 to 2, not {alpha!r}")
    return {"name": variant, "num_classes": num_classes, "image_size": image_size, "dropout": float(dropout),
            "alpha": float(alpha)}


def build_model(spec: dict):
    """An untrained model of an architecture (`architecture`'s create_model arguments), from the registry."""
    from edge_fer.models import create_model

    return create_model(weights="none", **spec)


def load_model(path: str | Path):
    """(Keras model, model.json) for a model.keras (or its folder) written by edge-fer: rebuilt from the
    registry, weights only from the file."""
    path = model_file(path)
    meta = read_model_json(path)
    spec = architecture(meta, path)
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a .keras archive")
    with zipfile.ZipFile(path) as archive:
        if WEIGHTS_ENTRY not in archive.namelist():
            raise UserError(f"{path}: the archive holds no {WEIGHTS_ENTRY}")
        declared = archive.getinfo(WEIGHTS_ENTRY).file_size
    model = build_model(spec)
    # the weights (float32), room for an optimizer's slots and HDF5's own bytes: an entry declaring more is not
    # this model's, and would be read for minutes before failing
    limit = 4 * 4 * model.count_params() + (16 << 20)
    if declared > limit:
        raise UserError(f"{path}: {WEIGHTS_ENTRY} declares {declared:,} bytes, more than a {spec['name']} of "
                        f"{model.count_params():,} weights can hold ({limit:,})")
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise UserError(f"{path}: its weights do not fit a {spec['name']} for {spec['num_classes']} classes at "
                        f"{spec['image_size']} px ({reason})") from None
    return model, meta
