"""Keep TensorFlow's and the converters' own messages off the console and in a log file.

TensorFlow, XLA and the TFLite/MLIR converters print from C++ straight to file descriptor 2, some of it before
any logging level is read (absl's "All log messages before absl::InitializeLog()", oneDNN notices, a cuInit
"failure" on every CPU-only machine, the converter's "fully_quantize: 0 ..."). No Python setting reaches them,
so the command-line entry point points descriptor 2 at a log file and gives Python (sys.stderr, and with it
rich's progress and every error line) a copy of the real terminal. Python warnings and the tensorflow/absl
loggers go to the same log. A pipeline run moves the log into its run folder.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

NOISY_LOGGERS = ("tensorflow", "absl", "tf2onnx", "onnxruntime", "py.warnings", "h5py")

current_log: Path | None = None


def default_log() -> Path:
    """Under the user's cache folder; an OSError (the messages stay on the terminal) where the home folder does not
    exist: a HOME that points nowhere must not make edge-fer create it."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "edge_fer" / "logs" / "native.log"
    home = Path.home()
    if not home.is_dir():
        raise OSError(f"the home folder {home} does not exist")
    return home / ".cache" / "edge_fer" / "logs" / "native.log"


def native_output_to(log_path: str | Path) -> Path:
    """From now on descriptor 2 (C/C++ output) and library log records go to `log_path`; Python keeps the terminal.
    Calling it again moves them to another file."""
    global current_log
    log_path = Path(log_path).resolve()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if current_log is None:
        sys.stderr.flush()
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors="replace")
        route_library_logs()
    target = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    os.close(target)
    current_log = log_path
    return log_path


def give_back_descriptor_2() -> None:
    """Before exec: descriptor 2 is the terminal again (the new program redirects it itself)."""
    global current_log
    if current_log is not None:
        sys.stderr.flush()
        os.dup2(sys.stderr.fileno(), 2)
        current_log = None


def route_library_logs() -> None:
    """Warnings and library loggers write to descriptor 2, which is the log file once redirected."""
    handler = logging.StreamHandler(open(2, "w", buffering=1, closefd=False, errors="replace"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.captureWarnings(True)
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
