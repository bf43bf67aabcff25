"""Software versions recorded with every artifact and measurement."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("edge-fer", "tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx",
            "onnxruntime", "ai-edge-litert", "tensorrt", "numpy")


def software_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
