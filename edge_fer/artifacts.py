"""What an artifact is: its format (from its name or metadata) and the metadata record that travels with it, a
JSON file beside it (<artifact>.json) and for ONNX also the model's metadata_props. Export, the runtimes and the
bench all read artifacts through this module; it imports neither TensorFlow nor any runtime."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge_fer import atomic
from edge_fer.errors import UserError
from edge_fer.formats import ExportFormat, format_of_name, get_format


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def check_probabilities(probabilities, classes: int, where: str):
    """A model's output as class probabilities, or a one-line UserError: every value finite and in [0, 1], one
    column per class, rows summing to 1 (int8 outputs are a step or two of their scale off)."""
    import numpy as np

    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != classes:
        raise UserError(f"{where}: the model gives {values.shape[-1] if values.ndim else 0} outputs per image for "
                        f"{classes} classes: its metadata is not for this model")
    if not np.all(np.isfinite(values)):
        raise UserError(f"{where}: the model's outputs include NaN or infinity: it is broken, re-export it")
    if values.size and (values.min() < -1e-3 or values.max() > 1 + 1e-3 or np.abs(values.sum(axis=1) - 1).max() > 0.05):
        raise UserError(f"{where}: the model's outputs are not class probabilities (from {values.min():.3g} to "
                        f"{values.max():.3g}, rows summing to {values.sum(axis=1).min():.3g}-{values.sum(axis=1).max():.3g})")
    return values


def check_file_hash(artifact: Path, record: dict | None) -> None:
    """A sidecar that records its file's SHA-256 must describe that file, not one exported there before."""
    recorded = (record or {}).get("file_sha256")
    if isinstance(recorded, str) and recorded != file_sha256(artifact):
        raise UserError(f"{sidecar_path(artifact)} describes another file (its file_sha256 is not {artifact.name}'s): "
                        "export again, or remove the stale .json")


def write_metadata(artifact: Path, record: dict) -> None:
    atomic.write_json(sidecar_path(artifact), record)


def read_metadata(artifact: str | Path) -> dict | None:
    """The artifact's record from its sidecar (or ONNX metadata_props), checked: a record a program reads fields
    from must have them in the right type, or it is a one-line UserError naming the file."""
    artifact = Path(artifact)
    sidecar = sidecar_path(artifact)
    if sidecar.is_file():
        return check_metadata(parse_record(sidecar.read_bytes(), sidecar), sidecar)
    if artifact.suffix == ".onnx" and artifact.is_file():
        import onnx

        try:
            model = onnx.load(str(artifact), load_external_data=False)
        except Exception:  # not an ONNX file: no metadata; the runtime says what is wrong when it loads it
            return None
        for prop in model.metadata_props:
            if prop.key == "edge_fer":
                return check_metadata(parse_record(prop.value.encode(), artifact), artifact)
    return None


def record_of(model: str | Path) -> dict | None:
    """What a model is, from its record: an exported file's own (its .json or ONNX metadata), else the model.json of
    the folder that holds it (a Keras model, or a file exported without a .json), checked the same way."""
    model = Path(model)
    if not model.exists():
        raise UserError(f"{model} does not exist; pass an exported file or a model.keras folder")
    record = read_metadata(model) if model.is_file() else None
    if record is not None:
        return record
    model_json = (model if model.is_dir() else model.parent) / "model.json"
    if not model_json.is_file():
        return None
    fix = "restore it from the training run that wrote the model"
    return check_metadata(parse_record(model_json.read_bytes(), model_json, fix), model_json)


MAX_RECORD_BYTES = 16 << 20

# field: (the types it may have, what to say); absent fields are fine, present ones must be right
RECORD_FIELDS = {
    "format": ((str,), "a format name"),
    "classes": ((list,), "a list of class names"),
    "image_size": ((int,), "an integer number of pixels"),
    "input_shape": ((list,), "a list of integers"),
    "preprocessing": ((dict,), "a table"),
    "metrics": ((dict,), "a table"),
    "dataset": ((dict,), "a table"),
    "variant": ((str,), "a model variant name"),
    "num_classes": ((int,), "an integer"),
}


def parse_record(payload: bytes, source: Path, fix: str = "re-export the artifact or delete the .json") -> dict:
    if len(payload) > MAX_RECORD_BYTES:
        raise UserError(f"{source}: metadata larger than {MAX_RECORD_BYTES >> 20} MB; not an edge_fer record")
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{source}: metadata is not valid JSON ({error}); {fix}") from None


def check_metadata(record, source: Path) -> dict:
    if not isinstance(record, dict):
        raise UserError(f"{source}: metadata must be a JSON object, got {type(record).__name__}")
    for field, (kinds, wanted) in RECORD_FIELDS.items():
        value = record.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise UserError(f"{source}: metadata field {field!r} must be {wanted}, got {value!r:.60}")
    if "classes" in record and not all(isinstance(name, str) for name in record["classes"]):
        raise UserError(f"{source}: metadata field 'classes' must be a list of class names")
    if "image_size" in record and not 8 <= record["image_size"] <= 4096:
        raise UserError(f"{source}: metadata field 'image_size' must be 8..4096, got {record['image_size']}")
    if record.get("format") not in (None, "keras"):
        get_format(record["format"])
    return record


def embed_onnx_metadata(model_proto, record: dict):
    """Store the record in metadata_props (key 'edge_fer'), plus the class names on their own for other tools."""
    for key in ("edge_fer", "classes"):
        for prop in list(model_proto.metadata_props):
            if prop.key == key:
                model_proto.metadata_props.remove(prop)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = "edge_fer", json.dumps(record, default=str)
    classes = model_proto.metadata_props.add()
    classes.key, classes.value = "classes", json.dumps(record.get("classes", []))
    return model_proto


def format_of_artifact(path) -> ExportFormat:
    """The format an exported file belongs to, from its file name (model-<format><suffix>) or its metadata."""
    path = Path(path)
    meta = read_metadata(path)
    if meta and meta.get("format"):
        return get_format(meta["format"])
    by_name = format_of_name(path.name)
    if by_name is not None:
        return by_name
    raise UserError(f"{path}: not a known artifact (expected .tflite, .onnx, .engine or a model.keras folder)")


def run_of(artifact: str) -> str:
    """runs/<run>/export/<file> -> <run>; a file anywhere else -> its folder's name."""
    folder = Path(artifact).parent
    return folder.parent.name if folder.name == "export" else folder.name
