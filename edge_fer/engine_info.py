"""What a built TensorRT engine really is, read from TensorRT's layer information (trtexec --exportLayerInfo or
IEngineInspector, JSON with detailed profiling verbosity). Standard library only: it runs on the device too."""

from __future__ import annotations

import json
import os
import re

# "Format/Datatype" strings, e.g. "Row major linear FP32", "Channel major FP16 format where channel % 8 == 0",
# "Thirty-two wide channel vectorized row major Int8 format"
DATATYPES = (("int8", re.compile(r"\bInt8\b|\bINT8\b")), ("fp16", re.compile(r"\bFP16\b|\bHalf\b")),
             ("fp32", re.compile(r"\bFP32\b|\bFloat\b")))


def layer_datatypes(info: dict) -> dict:
    """How many engine layers put out each data type."""
    counts: dict = {}
    for layer in info.get("Layers", []) if isinstance(info, dict) else []:
        if not isinstance(layer, dict):
            continue
        for output in layer.get("Outputs", []):
            text = str(output.get("Format/Datatype", "")) if isinstance(output, dict) else ""
            kind = next((name for name, pattern in DATATYPES if pattern.search(text)), None)
            if kind:
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def built_precision(counts: dict) -> str | None:
    """The lowest precision any layer runs in: what the engine really is (None: nothing readable)."""
    return next((name for name in ("int8", "fp16", "fp32") if counts.get(name)), None)


def precision_from_layer_info(path) -> dict:
    """An engine's layer data types and built precision from trtexec's --exportLayerInfo file, or why there are none
    (trtexec before TensorRT 8.4 cannot write one)."""
    if not path or not os.path.isfile(str(path)):
        return {"precision_built": None, "precision_source": "not readable: this TensorRT has no --exportLayerInfo"}
    with open(str(path)) as handle:
        counts = layer_datatypes(json.load(handle))
    return {"layer_datatypes": counts, "precision_built": built_precision(counts), "precision_source": "layer information"}
