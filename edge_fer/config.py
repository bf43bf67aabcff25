"""Typed dataclass configs: loaded from TOML, overridden by `section.key=value`, validated before any work,
saved next to the outputs they produced."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path

import tomli_w

from edge_fer import atomic, tomllib_compat
from edge_fer.errors import UserError
from edge_fer.registry import closest

# Ranges by setting name, wherever the setting sits (TOML, --set, command-line flags): a value outside is a
# one-line error before any work, not an hour of training or a memory blow-up later.
LIMITS = {
    "epochs": (0, 10_000), "batch_size": (1, 4096), "steps_per_epoch": (1, 10_000_000), "learning_rate": (0.0, 10.0),
    "image_size": (32, 1024), "num_classes": (2, 1000), "dropout": (0.0, 0.99), "seed": (0, 2**32 - 1),
    "calibration_steps": (0, 1_000_000), "calibration_images": (1, 100_000), "parity_images": (1, 1_000_000),
    "min_queries": (1, 10_000_000), "warmup_queries": (0, 1_000_000), "min_duration_s": (0.0, 86_400.0),
    "max_duration_s": (0.0, 86_400.0), "offline_min_duration_s": (0.0, 86_400.0), "offline_batch": (1, 4096), "threads": (1, 1024), "workspace_mb": (1, 1 << 20),
    "rounds": (1, 1000), "min_batch": (1, 4096), "opt_batch": (1, 4096), "max_batch": (1, 4096), "opset": (13, 24),
}


def check_limit(name: str, value, where: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where or name} must be a finite number, got {value}")
    if name in LIMITS:
        low, high = LIMITS[name]
        if not low <= value <= high:
            raise UserError(f"{where or name} must be from {low} to {high}, got {value}")


def nested_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key below dataclass `cls`: 'scratch.epochs', 'augment.zoom', ..."""
    keys = []
    for field in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        if dataclasses.is_dataclass(hint):
            keys += nested_keys(hint, f"{prefix}{field.name}.")
        else:
            keys.append(f"{prefix}{field.name}")
    return keys


def nested_hint(cls, key: str, where: str) -> str:
    """'; did you mean train.scratch.epochs?' for train.epochs: the same last name one table deeper."""
    matches = [name for name in nested_keys(cls) if name.split(".")[-1] == key and "." in name]
    return f"; did you mean {' or '.join(where + name for name in matches)}?" if matches else ""


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass `cls` from a (TOML) dict; unknown keys and wrong types are one-line UserErrors."""
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'} must be a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise UserError(f"unknown key {where}{key!r}{closest(key, fields) or nested_hint(cls, key, where)}")
        values[key] = coerce(hints[key], value, f"{where}{key}")
        check_limit(key, values[key], f"{where}{key}")
    return cls(**values)


def coerce(hint, value, where: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, f"{where}.")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(option, value, where)
            except UserError as error:
                errors.append(error)
        raise errors[0]
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(repr, typing.get_args(hint)))
            raise UserError(f"{where} must be one of {choices}, got {value!r}{closest(str(value), map(str, typing.get_args(hint)))}")
        return value
    expected = origin or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is typing.Any or (isinstance(expected, type) and isinstance(value, expected)
                                  and not (expected is int and isinstance(value, bool))):
        return value
    name = getattr(expected, "__name__", str(expected))
    raise UserError(f"{where} must be {name}, got {type(value).__name__} {value!r}")


def to_dict(config) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items()}


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        with open(path, "rb") as stream:
            return tomllib_compat.load(stream)
    except tomllib_compat.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML ({error})") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a configuration") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def apply_override(data: dict, text: str) -> dict:
    """'train.batch_size=16' into a nested dict (the value read as TOML, else as a bare string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override {text!r} must look like section.key=value")
    try:
        value = tomllib_compat.loads(f"v = {raw}")["v"]
    except tomllib_compat.TOMLDecodeError:
        value = raw
    return set_dotted(data, key.strip(), value, where=f"override {text!r}")


def set_dotted(data: dict, key: str, value, where: str = "") -> dict:
    """data['a']['b']['c'] = value for key 'a.b.c', making the sections on the way."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"{where or key}: {part} is not a section")
    node[parts[-1]] = value
    return data


def save_toml(config, path: Path) -> None:
    atomic.write_text(path, tomli_w.dumps(strip_none(to_dict(config))))


def strip_none(value):
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    return value
