"""Device profiles from targets/*.toml: what a device runs, how to reach it, and its published peaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge_fer.config import from_dict, load_toml
from edge_fer.errors import UserError
from edge_fer.registry import closest

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"


@dataclass
class DeviceSection:
    gpu: str | None = None
    compute_capability: str | None = None
    jetpack: str | None = None
    tensorrt: str | None = None
    power_mode: str | None = None
    dla_cores: int = 0
    peak_int8_tops: float | None = None  # published; see the source comment in the TOML
    peak_fp16_tflops: float | None = None
    memory_bandwidth_gbs: float | None = None
    peaks_source: str | None = None


@dataclass
class TensorRTSection:
    precisions: list = field(default_factory=lambda: ["fp32", "fp16", "int8"])
    workspace_mb: int = 1024
    dla_core: int | None = None  # None: GPU only
    gpu_fallback: bool = True
    builder_optimization_level: int = 3
    timing_cache: str | None = None
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8
    use_trtexec: bool = False  # build and benchmark with trtexec instead of the Python API


@dataclass
class Target:
    name: str
    description: str = ""
    kind: Literal["cpu", "gpu", "jetson"] = "cpu"
    access: Literal["local", "ssh"] = "local"
    ssh: str | None = None  # user@host, with key auth and a known host key
    ssh_port: int = 22
    ssh_key: str | None = None  # private key file; otherwise ssh's own defaults
    known_hosts: str | None = None  # known_hosts file; otherwise ~/.ssh/known_hosts (checking is always strict)
    remote_dir: str = "/tmp/edge_fer"
    python: str = "python3"
    threads: int | None = None
    formats: list = field(default_factory=list)  # export formats this target benchmarks
    device: DeviceSection = field(default_factory=DeviceSection)
    tensorrt: TensorRTSection = field(default_factory=TensorRTSection)


def list_targets(folder: Path = TARGETS_DIR) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.toml"))


def load_target(name_or_path: str, folder: Path = TARGETS_DIR) -> Target:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = folder / f"{name_or_path}.toml"
    if not path.is_file():
        names = list_targets(folder)
        raise UserError(f"unknown target {name_or_path!r}{closest(name_or_path, names)}; known: {', '.join(names)}")
    data = load_toml(path)
    data.setdefault("name", path.stem)
    try:
        target = from_dict(Target, data)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    if target.access == "ssh" and not target.ssh:
        raise UserError(f"{path}: access = 'ssh' needs ssh = 'user@host'")
    return target
