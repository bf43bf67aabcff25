"""The TensorRT runner's use of TensorRT and cuda-python, against fakes: the fake "device" memory is host memory,
the fake engine computes a known function, so the copies, addresses, shapes and frees are all checked."""

import ctypes
import sys
import types

import numpy as np
import pytest

from edge_fer.runtimes.tensorrt_runtime import TensorRTRunner

CLASSES = 7


class FakeCudart:
    class cudaMemcpyKind:  # noqa: N801 (cuda-python's name)
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    def __init__(self):
        self.buffers, self.freed, self.calls = {}, [], []

    def cudaStreamCreate(self):  # noqa: N802
        return 0, 77

    def cudaMalloc(self, nbytes):  # noqa: N802
        buffer = ctypes.create_string_buffer(nbytes)
        self.buffers[ctypes.addressof(buffer)] = buffer
        return 0, ctypes.addressof(buffer)

    def cudaMemcpyAsync(self, target, source, nbytes, kind, stream):  # noqa: N802
        assert stream == 77
        self.calls.append(kind)
        ctypes.memmove(target, source, nbytes)
        return (0,)

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    def cudaFree(self, pointer):  # noqa: N802
        self.freed.append(pointer)
        return (0,)

    def cudaStreamDestroy(self, stream):  # noqa: N802
        return (0,)


def expected_output(batch):
    logits = batch.reshape(len(batch), -1)[:, :CLASSES]
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


class FakeContext:
    def __init__(self):
        self.shapes, self.addresses = {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name):
        return (self.shapes["pixels"][0], CLASSES)

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream):
        shape = self.shapes["pixels"]
        count = int(np.prod(shape))
        source = np.frombuffer((ctypes.c_float * count).from_address(self.addresses["pixels"]), np.float32).reshape(shape)
        result = expected_output(source.copy() / 255.0).astype(np.float32)
        ctypes.memmove(self.addresses["probabilities"], result.ctypes.data, result.nbytes)
        return True


def fake_tensorrt(version):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.nptype = lambda dtype: np.float32
    engine = types.SimpleNamespace(
        num_io_tensors=2, get_tensor_name=lambda i: ["pixels", "probabilities"][i],
        get_tensor_mode=lambda name: "in" if name == "pixels" else "out",
        get_tensor_profile_shape=lambda name, profile: [(1, 8, 8, 3), (1, 8, 8, 3), (4, 8, 8, 3)],
        get_tensor_shape=lambda name: (-1, 8, 8, 3) if name == "pixels" else (-1, 7),  # -1: the dynamic batch
        get_tensor_dtype=lambda name: "float", create_execution_context=FakeContext)
    trt.Runtime = lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda data: engine)
    return trt


def install_fakes(monkeypatch, version):
    cudart = FakeCudart()
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda.bindings = bindings
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version))
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    return cudart


def test_runner_copies_in_runs_and_copies_out(monkeypatch, tmp_path):
    cudart = install_fakes(monkeypatch, "10.3.0")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine")
    batch = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    with TensorRTRunner(engine) as runner:
        assert runner.input_spec.max_batch == 4
        output = runner.infer(batch)
        np.testing.assert_allclose(output, expected_output(batch / 255.0), rtol=1e-5)
        runner.infer(batch[:1])  # a smaller batch reuses the buffers
        assert len(cudart.buffers) == 2
        with pytest.raises(Exception, match="larger than"):
            runner.infer(np.zeros((5, 8, 8, 3), np.float32))
    assert cudart.calls == [1, 2, 1, 2]
    assert sorted(cudart.freed) == sorted(cudart.buffers)


def test_runner_refuses_tensorrt_without_the_tensor_api(monkeypatch, tmp_path):
    install_fakes(monkeypatch, "8.2.1")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine")
    with pytest.raises(RuntimeError, match="use_trtexec = true"):
        TensorRTRunner(engine).load()


def test_runner_without_cuda_python_says_which_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.3.0"))
    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine")
    with pytest.raises(RuntimeError, match=r"edge-fer\[tensorrt\]"):
        TensorRTRunner(engine).load()
