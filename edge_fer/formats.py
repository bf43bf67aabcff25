"""Every export format, declared once: THE table of per-format facts. The CLI, the exporter, the runtimes, the
bench (its peak kernels and the device bundle's file globs) and the report read it; nothing else lists formats.
A new format is a row here and a builder (export/builders.py, or an engine for runtime "tensorrt")."""

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
    peak: str | None = None  # the `bench --peak` format whose MAC rate it is compared with (None: no host peak)
    shown_precision: str | None = None  # what tables call its precision, where "int8" alone would overstate it
    on_request: bool = False  # made only when named (it needs settings 'cpu' and 'all' cannot guess)
    keeps_float: bool = False  # keeps the layers of export.keep_float in float: a mixed-precision format
    engine_from: str | None = None  # an engine built from this ONNX format (None: by precision, tensorrt.engine_source)

    @property
    def file_name(self) -> str:
        return f"model-{self.name}{self.suffix}"


TRT_OPTIONS = ("workspace_mb", "dla_core", "timing_cache", "max_batch")
TFLITE, TFLITE_INT8 = ("threads",), ("threads", "calibration_images")
PARITY_FLOORS = {"fp32": 0.99, "fp16": 0.99, "dynamic": 0.99, "int8": 0.97}  # top-1 agreement with the Keras model

FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("tflite-fp32", ".tflite", "fp32", "litert", "float", options=TFLITE, peak="tflite-fp32"),
    ExportFormat("tflite-fp16", ".tflite", "fp16", "litert", "float", options=TFLITE, peak="tflite-fp32"),
    ExportFormat("tflite-dynamic", ".tflite", "dynamic", "litert", "float", options=TFLITE, peak="tflite-int8"),
    ExportFormat("tflite-int8", ".tflite", "int8", "litert", "float", calibrated=True, options=TFLITE_INT8, peak="tflite-int8"),
    ExportFormat("tflite-int8-qat", ".tflite", "int8", "litert", "qat", calibrated=True, options=TFLITE_INT8,
                 peak="tflite-int8"),
    # The stem (first convolution) folded to one input channel and kept float: see converters.keras_to_tflite_float_stem
    ExportFormat("tflite-int8-grey", ".tflite", "int8", "litert", "float", calibrated=True, options=TFLITE_INT8, grey=True,
                 peak="tflite-int8", shown_precision="int8, fp32 stem"),
    # int8 with the layers named in export.keep_float left in fp32: see converters.keras_to_tflite_mixed
    ExportFormat("tflite-mixed", ".tflite", "int8", "litert", "float", calibrated=True, options=TFLITE_INT8,
                 peak="tflite-int8", shown_precision="int8, chosen layers fp32", on_request=True, keeps_float=True),
    ExportFormat("onnx-fp32", ".onnx", "fp32", "onnxruntime", "float", options=("opset",), peak="onnx-fp32"),
    ExportFormat("onnx-fp16", ".onnx", "fp16", "onnxruntime", "float", options=("opset",), peak="onnx-fp32"),
    ExportFormat("onnx-int8-qdq", ".onnx", "int8", "onnxruntime", "qat", calibrated=True, options=("opset",),
                 peak="onnx-int8-ptq"),
    ExportFormat("onnx-int8-ptq", ".onnx", "int8", "onnxruntime", "float", calibrated=True,
                 options=("opset", "calibration_images"), peak="onnx-int8-ptq"),
    # onnx-int8-ptq with the nodes of the export.keep_float layers left in fp32: see converters.onnx_to_int8_ptq
    ExportFormat("onnx-mixed-qdq", ".onnx", "int8", "onnxruntime", "float", calibrated=True,
                 options=("opset", "calibration_images"), peak="onnx-int8-ptq", shown_precision="int8, chosen layers fp32",
                 on_request=True, keeps_float=True),
    ExportFormat("tensorrt-fp32", ".engine", "fp32", "tensorrt", "float", needs_gpu=True, options=TRT_OPTIONS),
    ExportFormat("tensorrt-fp16", ".engine", "fp16", "tensorrt", "float", needs_gpu=True, options=TRT_OPTIONS),
    ExportFormat("tensorrt-int8", ".engine", "int8", "tensorrt", "qat", needs_gpu=True, options=TRT_OPTIONS),
    # from onnx-mixed-qdq, its float nodes constrained to fp16 (--layerPrecisions): see tensorrt.EngineBuildConfig
    ExportFormat("tensorrt-mixed", ".engine", "int8", "tensorrt", "float", needs_gpu=True, options=TRT_OPTIONS,
                 shown_precision="int8, chosen layers fp16", on_request=True, keeps_float=True, engine_from="onnx-mixed-qdq"),
)


def export_formats() -> list[ExportFormat]:
    return list(FORMATS)


def find_format(name: str | None) -> ExportFormat | None:
    """The format of that name, or None (a store row of a format no longer in the table, a peer's row)."""
    return next((f for f in FORMATS if f.name == name), None)


def get_format(name: str) -> ExportFormat:
    found = find_format(name)
    if found is not None:
        return found
    names = [f.name for f in FORMATS]
    raise UserError(f"unknown export format {name!r}{closest(name, names)}; known: {', '.join(names)}")


def parse_formats(text: str) -> list[ExportFormat]:
    """'all' or 'cpu', each optionally followed by '-name' items it leaves out ('cpu,-onnx-int8-ptq'), or a
    comma-separated list of names."""
    group, *rest = [item.strip() for item in text.split(",") if item.strip()] or [""]
    if group not in ("all", "cpu"):
        return [get_format(name) for name in [group, *rest] if name]
    added = [item for item in rest if not item.startswith("-")]
    if added:
        raise UserError(f"export formats {text!r}: after {group!r} only '-name' items may follow, to leave formats out")
    left_out = {get_format(item[1:]).name for item in rest}
    return [f for f in FORMATS if (group == "all" or not f.needs_gpu) and not f.on_request and f.name not in left_out]


def runtime_of(format_name: str) -> str:
    """The runtime that runs a format ('other' for a row of no known format)."""
    found = find_format(format_name)
    return found.runtime if found else "other"


def format_of_name(name: str) -> ExportFormat | None:
    """The format a file name says (model-<format><suffix>), else the plainest format of its suffix, else None."""
    for export_format in FORMATS:
        if name == export_format.file_name:
            return export_format
    return next((f for f in FORMATS if name.endswith(f.suffix)), None)


def suffixes() -> list[str]:
    return list(dict.fromkeys(f.suffix for f in FORMATS))


def peak_of(format_name: str) -> str | None:
    found = find_format(format_name)
    return found.peak if found else None
