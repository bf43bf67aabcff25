"""Device profiles from targets/*.toml: what a device runs, how to reach it, and its published peaks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge_fer.config import from_dict, load_toml
from edge_fer.errors import UserError
from edge_fer.registry import closest

TARGETS_DIR = Path(__file__).resolve().parents[2] / "targets"
# ssh arguments come from a file: nothing in them may read as an ssh option or hold a space
SSH_DESTINATION = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,63}@)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_BUSY_WAIT_S = 86400  # a day: longer is a bench that will not end
PROGRAM = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./+-]{0,255}")


@dataclass
class DeviceSection:
    gpu: str | None = None
    compute_capability: str | None = None
    jetpack: str | None = None
    tensorrt: str | None = None  # the TensorRT version it runs (a row of targets/tensorrt_support.py)
    power_mode: str | None = None
    dla_cores: int = 0
    # Published peaks, one convention for every target: dense (no sparsity), FP16 tensor rate with FP32
    # accumulate, INT8 tensor rate; Jetson TOPS are the module's (GPU + DLA) at the stated power mode.
    peak_int8_tops: float | None = None
    # the GPU's own INT8 peak where the module figure includes DLAs (a GPU engine's roofline); None: not published
    peak_int8_tops_gpu: float | None = None
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
    trtexec: str | None = None  # trtexec's path; default: PATH, then JetPack's /usr/src/tensorrt/bin/trtexec


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
    remote_dir: str = "default"  # a folder name: the bundle goes to ~/.edge_fer/bundles/<remote_dir> on the device
    busy_wait_s: float = 1800.0  # how long a bench waits while another bench holds that folder
    python: str = "python3"
    threads: int | None = None
    runtimes: list = field(default_factory=list)  # the runtimes it has: it runs every format of theirs
    formats: list = field(default_factory=list)  # or a chosen list of formats (both empty: every format)
    device: DeviceSection = field(default_factory=DeviceSection)
    tensorrt: TensorRTSection = field(default_factory=TensorRTSection)


def runs_format(target: Target, export_format) -> str | None:
    """None where the target runs the format, else why not (one line)."""
    if target.formats and export_format.name not in target.formats:
        return f"target {target.name} does not run {export_format.name} (its formats: {', '.join(target.formats)})"
    if target.runtimes and export_format.runtime not in target.runtimes:
        return f"target {target.name} has no {export_format.runtime} (its runtimes: {', '.join(target.runtimes)})"
    return None


def check_remote_settings(target: Target, path: Path) -> None:
    """What goes on the ssh command line and into the remote shell, checked before anything runs."""
    if target.ssh is not None and not SSH_DESTINATION.fullmatch(target.ssh):
        raise UserError(f"{path}: ssh = {target.ssh!r} is not user@host (letters, digits, '.', '_', '-'; no leading '-', "
                        "no spaces)")
    if not 1 <= target.ssh_port <= 65535:
        raise UserError(f"{path}: ssh_port must be from 1 to 65535, not {target.ssh_port}")
    if not FOLDER_NAME.fullmatch(target.remote_dir):
        raise UserError(f"{path}: remote_dir = {target.remote_dir!r} must be a plain folder name (letters, digits, "
                        "'.', '_', '-'): the bundle goes to ~/.edge_fer/bundles/<remote_dir> on the device")
    if not 0 <= target.busy_wait_s <= MAX_BUSY_WAIT_S:
        raise UserError(f"{path}: busy_wait_s must be from 0 to {MAX_BUSY_WAIT_S} seconds, not {target.busy_wait_s}")
    for name, value in (("python", target.python), ("trtexec", target.tensorrt.trtexec)):
        if value is not None and not PROGRAM.fullmatch(value):
            raise UserError(f"{path}: {name} = {value!r} must be a program name or path (no spaces, no leading '-')")


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
    check_remote_settings(target, path)
    if target.device.tensorrt:
        from edge_fer.targets.tensorrt_support import get_support

        try:
            get_support(target.device.tensorrt)
        except UserError as error:
            raise UserError(f"{path}: {error}") from None
    return target


def new_target_text(name: str, like: str, folder: Path = TARGETS_DIR) -> str:
    """A target file to edit: `like`'s, with the name in its description and the SSH address left for the user."""
    if not FOLDER_NAME.fullmatch(name):
        raise UserError(f"target name {name!r} must be a plain name (letters, digits, '.', '_', '-')")
    template = load_target(like, folder)
    path = folder / f"{template.name}.toml"
    lines = [f"# {name}: made from targets/{template.name}.toml by `edge-fer targets new`. Edit what differs on your",
             "# device: ssh (key authentication; its host key in ~/.ssh/known_hosts), python, [device] tensorrt",
             "# (the first line of `trtexec --help` on the board), threads, power_mode."]
    for line in path.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "ssh":
            line = 'ssh = "user@host"  # your device'
        elif key == "description":
            line = f'description = "{name} (like {template.name})"'
        lines.append(line)
    return "\n".join(lines) + "\n"
