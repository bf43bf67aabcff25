"""Runtime registry: `create_runtime(name, path)`; `runtime_for(artifact)` picks by the artifact's format."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edge_fer.registry import Registry
from edge_fer.runtimes.base import InputSpec, Runner

RUNTIMES: Registry[Callable[..., Runner]] = Registry("runtime")


def _lazy(module: str, cls: str) -> Callable[..., Runner]:
    """Runtime modules import their heavy library lazily, so the registry imports none of them."""
    def build(path, **options):
        import importlib

        return getattr(importlib.import_module(f"edge_fer.runtimes.{module}"), cls)(path, **options)
    build.__name__ = cls
    return build


# name -> (module in edge_fer/runtimes/, class, runs on the device side: no TensorFlow, Python 3.8+)
RUNTIME_MODULES = {"keras": ("keras_runtime", "KerasRunner", False), "litert": ("litert", "LiteRTRunner", True),
                   "onnxruntime": ("onnxruntime_runtime", "OnnxRuntimeRunner", True),
                   "tensorrt": ("tensorrt_runtime", "TensorRTRunner", True)}
for _name, (_module, _cls, _) in RUNTIME_MODULES.items():
    RUNTIMES.register(_name)(_lazy(_module, _cls))


def device_runtime_files() -> list[str]:
    """The runtime modules a device bundle carries (paths under edge_fer/)."""
    return [f"runtimes/{module}.py" for module, _, device in RUNTIME_MODULES.values() if device]


def list_runtimes() -> list[str]:
    return RUNTIMES.names()


def create_runtime(name: str, path: str | Path, **options) -> Runner:
    return RUNTIMES.get(name)(path, **options)


def runtime_for(artifact: str | Path, **options) -> Runner:
    artifact = Path(artifact)
    if artifact.is_dir() or artifact.suffix == ".keras":
        return create_runtime("keras", artifact, **options)
    from edge_fer.artifacts import format_of_artifact

    return create_runtime(format_of_artifact(artifact).runtime, artifact, **options)


__all__ = ["InputSpec", "Runner", "create_runtime", "list_runtimes", "runtime_for"]
