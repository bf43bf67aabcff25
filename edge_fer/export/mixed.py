"""Which layers a mixed-precision format keeps in float: `export.keep_float`, either Keras layer names or
"auto:N", the N layers `edge-fer debug precision` finds the full int8 file loses most in, on the validation split
(resolved above this layer, by edge_fer.debug.auto, before the export runs)."""

from __future__ import annotations

import re

from edge_fer.errors import UserError

AUTO = re.compile(r"auto:(\d+)")
AUTO_MAX = 64


def parse_keep_float(value) -> list[str] | int:
    """The layer names (a list, or one comma-separated string), or N for "auto:N"; else one line saying what to write."""
    names = None
    if isinstance(value, str):
        match = AUTO.fullmatch(value.strip())
        if match and 1 <= int(match.group(1)) <= AUTO_MAX:
            return int(match.group(1))
        names = [name.strip() for name in value.split(",") if name.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        names = [name.strip() for name in value if name.strip()]
    if names is not None and not any(name.startswith("auto") for name in names):
        return names
    raise UserError(f"export.keep_float (--keep-float) is {value!r}: give Keras layer names [\"conv_dw_3_relu\", ...] or "
                    f"\"auto:N\" (N from 1 to {AUTO_MAX}: the N layers int8 hurts most, ranked on the validation split)")


def float_nodes_of(record: dict | None) -> tuple[str, ...]:
    """The nodes a mixed-precision ONNX file keeps in float, as its edge_fer record lists them (`keep_float_nodes`):
    what TensorRT's rule check accepts in float and what an engine constrains to fp16."""
    nodes = record.get("keep_float_nodes") if isinstance(record, dict) else None
    return tuple(name for name in nodes if isinstance(name, str)) if isinstance(nodes, list) else ()


def require_keep_float(formats, value) -> None:
    """A mixed format needs layers to keep: refused before any work when none are named."""
    mixed = [f.name for f in formats if f.keeps_float]
    if mixed and not parse_keep_float(value):
        raise UserError(f"{', '.join(mixed)} keep the layers in export.keep_float in float: name them (--keep-float A,B) "
                        "or give auto:N (the N layers `edge-fer debug precision` ranks first)")
