"""TensorRT engines through the TensorRT runtime (TensorRT 10 tensor API), with CUDA memory from cuda-python."""

from __future__ import annotations

import dataclasses

import numpy as np

from edge_fer.errors import UserError
from edge_fer.runtimes.base import Runner, spec_from_shapes


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise RuntimeError("the TensorRT runtime needs cuda-python: pip install 'edge-fer[tensorrt]'") from None
    return cudart


TENSOR_API_SINCE = (8, 5)  # get_tensor_name / set_tensor_address / execute_async_v3


def _check(result):
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"CUDA error {error}")
    return values[0] if len(values) == 1 else values


class TensorRTRunner(Runner):
    name = "tensorrt"

    def _load(self) -> None:
        import tensorrt as trt

        major, minor = (int(part) for part in trt.__version__.split(".")[:2])
        if (major, minor) < TENSOR_API_SINCE:
            raise RuntimeError(f"TensorRT {trt.__version__} has no name-based tensor API (8.5+); benchmark this "
                               "device's engines with trtexec (use_trtexec = true in its target)")
        self.trt = trt
        self.cudart = _cudart()
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise UserError(f"{self.path}: not an engine for this GPU and TensorRT version; rebuild it here")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        shape = self.engine.get_tensor_profile_shape(self.input_name, 0)[2]  # (min, opt, max): the max
        spec = spec_from_shapes(self.path, list(shape), list(self.engine.get_tensor_shape(self.output_name)))
        self.input_spec = dataclasses.replace(spec, max_batch=int(shape[0]))
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.buffers: dict[str, tuple[int, int]] = {}

    def _device_buffer(self, name: str, nbytes: int) -> int:
        pointer, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                _check(self.cudart.cudaFree(pointer))
            pointer = _check(self.cudart.cudaMalloc(nbytes))
            self.buffers[name] = (pointer, nbytes)
        return pointer

    def _run(self, batch: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        self.context.set_input_shape(self.input_name, batch.shape)
        output_shape = tuple(self.context.get_tensor_shape(self.output_name))
        output = np.empty(output_shape, dtype=self.trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        source = self._device_buffer(self.input_name, batch.nbytes)
        target = self._device_buffer(self.output_name, output.nbytes)
        self.context.set_tensor_address(self.input_name, source)
        self.context.set_tensor_address(self.output_name, target)
        _check(cudart.cudaMemcpyAsync(source, batch.ctypes.data, batch.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        _check(cudart.cudaMemcpyAsync(output.ctypes.data, target, output.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return output.astype(np.float32, copy=False)

    def _close(self) -> None:
        for pointer, _ in self.buffers.values():
            self.cudart.cudaFree(pointer)
        self.cudart.cudaStreamDestroy(self.stream)
        del self.context, self.engine
