"""The metadata record that travels with every artifact: a JSON file beside it (<artifact>.json), and for
ONNX also the model's metadata_props. Nothing here imports TensorFlow."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to .partial-<name>, then rename: a reader sees the whole file or none, and a failure (a full disk,
    a read-only folder, a folder in the way) leaves nothing behind."""
    from edge_fer.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name")
    temporary = path.with_name(f".partial-{path.name}")
    try:
        temporary.write_bytes(payload)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_metadata(artifact: Path, record: dict) -> None:
    atomic_write_bytes(sidecar_path(artifact), json.dumps(record, indent=2, default=str).encode())


def read_metadata(artifact: str | Path) -> dict | None:
    artifact = Path(artifact)
    sidecar = sidecar_path(artifact)
    if sidecar.is_file():
        return json.loads(sidecar.read_text())
    if artifact.suffix == ".onnx" and artifact.is_file():
        import onnx

        try:
            model = onnx.load(str(artifact), load_external_data=False)
        except Exception:  # not an ONNX file: no metadata; the runtime says what is wrong when it loads it
            return None
        for prop in model.metadata_props:
            if prop.key == "edge_fer":
                return json.loads(prop.value)
    return None


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
