"""`edge-fer doctor`: what this machine (and any target named) has for each stage, and the command that adds what is
missing. Reads package versions from their metadata and programs from PATH: nothing heavy is imported."""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

OK, MISSING, OPTIONAL = "ok", "MISSING", "not here"
PIP_EXTRAS = "pip install -e '.[dev]'"


@dataclass
class Check:
    what: str  # the component
    needed_for: str  # the stage or task that needs it
    status: str  # OK, MISSING (the main job cannot run without it) or OPTIONAL (a task it serves is off)
    found: str  # its version, path or what was seen
    fix: str = ""  # the command that adds it

    def as_dict(self) -> dict:
        return asdict(self)


def package_version(*names: str) -> tuple[str, str] | None:
    """(distribution, version) of the first of `names` installed, else None."""
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


PACKAGES = (  # (what, needed for, distributions (first found wins), required by the main job, how to add it)
    ("TensorFlow", "train, QAT, TFLite export", ("tensorflow", "tensorflow-cpu"), True, PIP_EXTRAS),
    ("tf_keras", "train (Keras 2 API)", ("tf-keras", "tf_keras"), True, PIP_EXTRAS),
    ("tensorflow-model-optimization", "QAT", ("tensorflow-model-optimization",), True, PIP_EXTRAS),
    ("LiteRT", "TFLite artifacts", ("ai-edge-litert", "tflite-runtime"), True, PIP_EXTRAS),
    ("onnx + tf2onnx", "ONNX export", ("tf2onnx",), True, PIP_EXTRAS),
    ("onnxruntime", "ONNX artifacts", ("onnxruntime", "onnxruntime-gpu"), True, PIP_EXTRAS),
    ("TensorRT (Python)", "TensorRT engines on this GPU", ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"), False,
     "pip install -e '.[tensorrt]' (an NVIDIA GPU and driver first)"),
    ("fer", "the peer comparison (benchmarks/fer_peer.py)", ("fer",), False, "pip install --no-deps fer==25.10.3"),
    ("playwright", "the report render check", ("playwright",), False, PIP_EXTRAS),
)
PROGRAMS = (  # (what, needed for, program names, how to add it)
    ("sshd (OpenSSH server)", "the SSH bench tests (loopback)", ("sshd", "/usr/sbin/sshd"), "apt-get install openssh-server"),
    ("ssh (OpenSSH client)", "SSH targets", ("ssh",), "apt-get install openssh-client"),
    ("Chromium", "the report render check (benchmarks/render_report.py)", ("chromium", "chromium-browser"),
     "apt-get install chromium"),
)


def package_checks() -> list[Check]:
    checks = []
    for what, needed_for, names, required, fix in PACKAGES:
        found = package_version(*names)
        status = OK if found else (MISSING if required else OPTIONAL)
        checks.append(Check(what, needed_for, status, f"{found[0]} {found[1]}" if found else "-", "" if found else fix))
    return checks


def program_checks() -> list[Check]:
    checks = []
    for what, needed_for, names, fix in PROGRAMS:
        path = next((found for found in map(shutil.which, names) if found), None)
        checks.append(Check(what, needed_for, OK if path else OPTIONAL, path or "-", "" if path else fix))
    return checks


def gpu_checks() -> list[Check]:
    from edge_fer.export import tensorrt

    gpu = tensorrt.gpu_info()
    trtexec = tensorrt.find_trtexec()
    version = tensorrt.trtexec_version(trtexec) if trtexec else None
    return [
        Check("NVIDIA GPU and driver", "TensorRT engines, GPU targets", OK if gpu else OPTIONAL,
              f"{gpu['gpu']} (compute {gpu['compute_capability']}), driver {gpu['driver']}" if gpu else "no nvidia-smi",
              "" if gpu else "an NVIDIA GPU with its driver (nvidia-smi)"),
        Check("trtexec", "engines built with trtexec; Jetson boards", OK if trtexec else OPTIONAL,
              f"{trtexec} (TensorRT {version or '?'})" if trtexec else "-",
              "" if trtexec else "TensorRT's trtexec on PATH (JetPack: /usr/src/tensorrt/bin/trtexec)"),
    ]


def interpreter_check() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    fine = sys.version_info >= (3, 10)
    return Check("Python", "everything", OK if fine else MISSING, f"{version} ({sys.executable})",
                 "" if fine else "Python 3.10 or newer")


def target_check(name: str) -> Check:
    """A target from targets/: a local one is this machine; an SSH one is asked for its Python and runtimes."""
    from edge_fer.errors import UserError
    from edge_fer.targets import load_target

    target = load_target(name)
    if target.access != "ssh":
        return Check(f"target {target.name}", "edge-fer bench --target", OK, f"this machine ({target.kind})")
    from edge_fer.bench.board import summary, too_old
    from edge_fer.bench.board_engines import probe_board

    try:
        board = probe_board(target)
    except UserError as error:
        return Check(f"target {target.name}", "edge-fer bench --target", MISSING, str(error),
                     f"check ssh {target.ssh} (key authentication, its host key in ~/.ssh/known_hosts)")
    problem = too_old(board)
    found = f"{target.ssh}: {summary(board)}"
    return Check(f"target {target.name}", "edge-fer bench --target", MISSING if problem else OK, found, problem or "")


def diagnose(targets: list[str] | None = None) -> list[Check]:
    checks = [interpreter_check(), *package_checks(), *gpu_checks(), *program_checks()]
    return checks + [target_check(name) for name in targets or []]
