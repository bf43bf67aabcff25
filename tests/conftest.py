import os
from collections import Counter
from pathlib import Path

import pytest

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


def pytest_collection_modifyitems(config, items):
    if _has_tensorrt_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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


# One small trained model, its QAT copy and every CPU artifact, shared by the export and runtime tests.
# Easy synthetic faces (no occluders) and ~1000 steps: a model confident enough that parity measures the
# export, not coin-flips between near-tied classes.
EXPORT_DATA = {"dataset": "synthetic", "options": {"train_count": 2100, "valid_count": 70, "test_count": 200, "occlusion": 0.0}}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    from edge_fer.config import from_dict
    from edge_fer.export.exporter import ExportSettings, export
    from edge_fer.quantize.config import QatConfig
    from edge_fer.quantize.qat import run_qat
    from edge_fer.train.config import TrainConfig
    from edge_fer.train.trainer import train


    root = tmp_path_factory.mktemp("exported")
    train(from_dict(TrainConfig, {
        "data": EXPORT_DATA, "model": {"image_size": 64, "weights": "none"},
        "train": {"schedule": "from_scratch", "batch_size": 32, "scratch": {"epochs": 15}}, "out": str(root / "float")}))
    run_qat(from_dict(QatConfig, {"model": str(root / "float"), "data": EXPORT_DATA, "epochs": 1, "steps_per_epoch": 10,
                                  "out": str(root / "qat")}))
    settings = ExportSettings(formats="cpu", calibration_images=64, parity_images=200)  # engines: tests marked gpu
    results = export(root / "float", root / "artifacts", settings, qat_dir=root / "qat")
    return root, {r["format"]: r for r in results}
