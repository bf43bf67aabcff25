"""Every export format, declared once. The CLI, the exporter dispatch and the benchmark loop read this table."""

from __future__ import annotations

from dataclasses import dataclass

from edge_fer.errors import UserError
from edge_fer.registry import closest


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    precision: str  # fp32, fp16, dynamic, int8
    runtime: str  # the registered runtime that runs it
    source: str  # 'float' (the trained model) or 'qat' (the quantization-aware model)
    needs_gpu: bool = False
    calibrated: bool = False  # needs calibration images
    options: tuple[str, ...] = ()  # export options this format accepts
    batchable: bool = True  # accepts batches larger than one
    grey: bool = False  # one-channel input: made only from a grey dataset

    @property
    def file_name(self) -> str:
        return f"model-{self.name}{self.suffix}"


TRT_OPTIONS = ("workspace_mb", "dla_core", "timing_cache", "max_batch")

FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("tflite-fp32", ".tflite", "fp32", "litert", "float", options=("threads",)),
    ExportFormat("tflite-fp16", ".tflite", "fp16", "litert", "float", options=("threads",)),
    ExportFormat("tflite-dynamic", ".tflite", "dynamic", "litert", "float", options=("threads",)),
    ExportFormat("tflite-int8", ".tflite", "int8", "litert", "float", calibrated=True, options=("threads", "calibration_images")),
    ExportFormat("tflite-int8-qat", ".tflite", "int8", "litert", "qat", calibrated=True, options=("threads", "calibration_images")),
    # The stem (first convolution) folded to one input channel and kept float: see converters.keras_to_tflite_float_stem
    ExportFormat("tflite-int8-grey", ".tflite", "int8", "litert", "float", calibrated=True,
                 options=("threads", "calibration_images"), grey=True),
    ExportFormat("onnx-fp32", ".onnx", "fp32", "onnxruntime", "float", options=("opset",)),
    ExportFormat("onnx-fp16", ".onnx", "fp16", "onnxruntime", "float", options=("opset",)),
    ExportFormat("onnx-int8-qdq", ".onnx", "int8", "onnxruntime", "qat", calibrated=True, options=("opset",)),
    ExportFormat("onnx-int8-ptq", ".onnx", "int8", "onnxruntime", "float", calibrated=True, options=("opset", "calibration_images")),
    ExportFormat("tensorrt-fp32", ".engine", "fp32", "tensorrt", "float", needs_gpu=True, options=TRT_OPTIONS),
    ExportFormat("tensorrt-fp16", ".engine", "fp16", "tensorrt", "float", needs_gpu=True, options=TRT_OPTIONS),
    ExportFormat("tensorrt-int8", ".engine", "int8", "tensorrt", "qat", needs_gpu=True, options=TRT_OPTIONS),
)


def export_formats() -> list[ExportFormat]:
    return list(FORMATS)


def get_format(name: str) -> ExportFormat:
    for export_format in FORMATS:
        if export_format.name == name:
            return export_format
    names = [f.name for f in FORMATS]
    raise UserError(f"unknown export format {name!r}{closest(name, names)}; known: {', '.join(names)}")


def parse_formats(text: str) -> list[ExportFormat]:
    """'all', 'cpu', or a comma-separated list of names."""
    if text in ("all", "cpu"):
        return [f for f in FORMATS if text == "all" or not f.needs_gpu]
    return [get_format(name.strip()) for name in text.split(",") if name.strip()]
