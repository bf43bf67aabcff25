import fcntl
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from edge_fer.atomic import write_text as atomic_write_text
from edge_fer.formats import PARITY_FLOORS
from tests.loopback_ssh import SSHD, start_sshd
from tests.toy_model import EXPORT_DATA, toy_model

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_addoption(parser):
    parser.addoption("--hostile-counts", action="store_true",
                     help="after collection, print how many hostile-input cases there are of each kind")


def pytest_collection_finish(session):
    if not session.config.getoption("--hostile-counts"):
        return
    kinds = Counter(hostile_kind(item) for item in session.items if item.get_closest_marker("hostile"))
    writer = session.config.get_terminal_writer()
    writer.line(f"hostile-input cases: {sum(kinds.values())}")
    for kind, count in sorted(kinds.items()):
        writer.line(f"  {kind:<18} {count}")


def hostile_kind(item) -> str:
    """A case's own kind: a pytest.param mark overrides the test function's."""
    kinds = [mark.args[0] for mark in item.own_markers if mark.name == "hostile"]
    return kinds[-1] if kinds else item.get_closest_marker("hostile").args[0]


def pytest_configure(config):
    # pytest-xdist 3.8 on pytest 9.2 drops --dist loadgroup's groups without a word (its issue #1386): then every
    # module-scoped fixture (an sshd, a trained model) is built on both workers, and the suite takes minutes longer
    if getattr(config.option, "dist", "no") == "loadgroup" and _groups_dropped(pytest.__version__, _xdist_version()):
        raise pytest.UsageError(f"pytest {pytest.__version__} with pytest-xdist {_xdist_version()} ignores the test "
                                "groups (pytest-xdist issue #1386): pip install 'pytest<9.2'")


def _groups_dropped(pytest_version: str, xdist_version: str) -> bool:
    from packaging.version import Version

    return Version(pytest_version) >= Version("9.2") and Version(xdist_version) <= Version("3.8.0")


def _xdist_version() -> str:
    from importlib.metadata import version

    return version("pytest-xdist")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    if _has_tensorrt_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def xdist_group(item) -> str:
    """pytest-xdist (--dist loadgroup) runs one group on one worker: a file's tests together, so that its
    module-scoped fixtures are built once (the session-scoped `exported` is shared between workers itself)."""
    return item.nodeid.split("::")[0]


def _has_tensorrt_gpu() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return Path("/dev/nvidia0").exists() or Path("/dev/nvhost-ctrl-gpu").exists()  # desktop GPU or Jetson


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGE_FER_CACHE", str(cache))
    return cache


@pytest.fixture
def unwritable(tmp_path):
    """A folder nothing may be written into: read-only for a normal user; root ignores permissions, so /sys."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


# The toy model's int8 floor. Symmetric per-tensor int8 (onnx-int8-ptq, TensorRT's form) agrees with it on 0.95 to
# 0.99 of the parity images, by the CPU it trained on (oneDNN's numerics differ between Intel and AMD): its patch
# convolutions and attention scores quantize worst (`edge-fer debug precision` ranks them). The exporter's own floor,
# 0.97, is for real models; here the floor checks that parity is measured and acted on.
TOY_FLOORS = {**PARITY_FLOORS, "int8": 0.93}


@pytest.fixture(scope="session")
def exported(tmp_path_factory, worker_id):
    """Built once per run: under xdist the first worker to need it builds it in the run's shared temporary folder,
    holding a lock, and the other worker waits for it and reads the same folder. Tests only read it."""
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    root, record = shared / "exported", shared / "exported" / "results.json"
    with open(shared / "exported.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.is_file():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed half-way on the other worker
            results = build_exported(root)
            atomic_write_text(record, json.dumps(results))
        return root, json.loads(record.read_text())


def build_exported(root: Path) -> dict:
    from edge_fer.config import from_dict
    from edge_fer.export.exporter import ExportSettings, export
    from edge_fer.quantize.config import QatConfig
    from edge_fer.quantize.qat import run_qat

    toy_model(root / "float")  # the committed toy model while it matches its recipe, else trained (tests/toy_model.py)
    # the ranges are the mean over the calibration batches: 50 batches of 32 settle them (the default 500 is for
    # real data; each calibration batch is an eager pass)
    run_qat(from_dict(QatConfig, {"model": str(root / "float"), "data": EXPORT_DATA, "epochs": 1, "steps_per_epoch": 10,
                                  "calibration_steps": 50, "out": str(root / "qat")}))
    settings = ExportSettings(formats="cpu", calibration_images=64, parity_images=200, floors=TOY_FLOORS)  # engines: tests marked gpu
    results = export(root / "float", root / "artifacts", settings, qat_dir=root / "qat")
    return {r["format"]: r for r in results}


@pytest.fixture(scope="module")
def loopback_ssh(tmp_path_factory):
    """An OpenSSH server on 127.0.0.1 for this module: the target-file lines that reach it (ssh, port, keys)."""
    if not Path(SSHD).exists():
        if os.environ.get("CI"):
            pytest.fail("openssh-server is missing: .ci/run installs it")
        pytest.skip("openssh-server (sshd) is not installed here")
    try:
        server, lines = start_sshd(tmp_path_factory.mktemp("ssh"))
    except RuntimeError as error:
        pytest.fail(str(error))
    yield lines
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def loopback_target(loopback_ssh, tmp_path_factory):
    # one bundle folder per test process: the two xdist workers share this home, and a bench holds its folder's
    # lock from upload to the end, so with one folder the workers' SSH tests would queue behind each other
    target_file = tmp_path_factory.mktemp("target") / "loopback.toml"
    target_file.write_text(f'description = "loopback SSH test target"\nkind = "cpu"\n{loopback_ssh}'
                           f'remote_dir = "loopback-test-{os.getpid()}"\npython = "{sys.executable}"\nthreads = 1\n')
    return target_file


