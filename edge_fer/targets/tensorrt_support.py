"""The TensorRT versions edge_fer builds for, and what each one accepts. Pure data: no TensorRT import.

Sources, per row: onnx-tensorrt's docs/operators.md at each release branch (opset ceiling, Q/DQ types),
trtexec's samples/common/sampleOptions.cpp at each tag (which flags parse), NVIDIA's migration guides
(8.x -> 10.x: --workspace removed for --memPoolSize; 10.x -> 11.x: precision flags, BuilderFlag.FP16/INT8 and
the OBEY/PREFER_PRECISION_CONSTRAINTS flags removed, every network strongly typed, JetPack not supported), the OSS
CHANGELOG (8.4.1: trtexec gains --layerPrecisions and --layerOutputTypes), and the JetPack release notes (which
TensorRT each JetPack ships). The builder (tensorrt.py), the trtexec command lines and the rule check
(tensorrt_rules.py) all read this one table; tests hold trtexec's flag lists per version as separate data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from edge_fer.errors import UserError


@dataclass(frozen=True)
class TensorRTSupport:
    family: str  # "8.2", "8.5", "8.6", "10", "11"
    jetpack: str | None  # the JetPack releases that ship it (None: none does)
    max_opset: int  # highest ONNX opset its parser imports
    qdq_types: tuple[str, ...]  # ONNX element types a Q/DQ may quantize to (zero point 0 always)
    strongly_typed: bool  # every network strongly typed: no FP16/INT8 builder flags; fp16 comes from an fp16 ONNX
    explicit_batch_flag: bool  # create_network needs 1 << EXPLICIT_BATCH (removed in 10: always explicit)
    memory_pool_api: bool  # IBuilderConfig.set_memory_pool_limit / --memPoolSize (8.4+); before: max_workspace_size / --workspace
    optimization_level: bool  # builder_optimization_level / --builderOptimizationLevel (8.6+)
    percentile_list: bool  # --percentile=90,95,99 (8.6+); before, one float
    dla: bool  # DLA builds possible with this release on Jetson
    layer_info: bool = True  # trtexec --exportLayerInfo / --profilingVerbosity=detailed (8.4+): precisions readable
    dq_zero_point: bool = False  # the 8.x ONNX parser needs DequantizeLinear's zero point input too
    implicit_int8: bool = True  # --calib / IInt8Calibrator (implicit quantization; removed in 11.x)
    layer_precisions: bool = True  # trtexec --precisionConstraints/--layerPrecisions (8.4+; gone in 11.x: strongly typed)

    @property
    def label(self) -> str:
        return self.family if "." in self.family else f"{self.family}.x"


SUPPORT: tuple[TensorRTSupport, ...] = (
    TensorRTSupport("8.2", "4.6", 13, ("INT8",), False, True, False, False, False, True, layer_info=False, dq_zero_point=True,
                    layer_precisions=False),
    TensorRTSupport("8.5", "5.0.2-5.1.x", 17, ("INT8",), False, True, True, False, True, True, dq_zero_point=True),
    TensorRTSupport("8.6", "6.0", 17, ("INT8",), False, True, True, True, True, True, dq_zero_point=True),
    TensorRTSupport("10", "6.1-6.2", 20, ("INT8", "FLOAT8E4M3FN", "INT4"), False, False, True, True, True, True),
    TensorRTSupport("11", None, 24, ("INT8", "FLOAT8E4M3FN", "INT4"), True, False, True, True, True, False,
                    implicit_int8=False, layer_precisions=False),
)
DLA_FROM = {"11": ((11, 4), "7.0")}  # TensorRT 11.4 brings DLA back on AGX Orin, with JetPack 7

FAMILIES = tuple(row.family for row in SUPPORT)
DEFAULT_FAMILY = "10"  # what a desktop `pip install` gets when the target does not say


def family_of(version: str) -> str:
    """'8.6.2' -> '8.6', '10.3.0' -> '10', '10.x' -> '10', '11' -> '11'; refuses what the table does not cover."""
    match = re.fullmatch(r"\s*(\d+)(?:\.(\d+|x))?(?:\.[\dx]+)*(?:\.?post\d+)?\s*", str(version))
    if not match:
        raise UserError(f"TensorRT version {version!r} is not of the form MAJOR.MINOR[.PATCH]")
    major, minor = int(match.group(1)), match.group(2)
    if major >= 10:
        family = str(major)
    elif minor is not None and minor != "x":
        family = f"{major}.{minor}"
        if family in ("8.4",):  # 8.4 parses like 8.5 (memPoolSize, no optimization level)
            family = "8.5"
    else:
        family = str(major)
    if family not in FAMILIES:
        raise UserError(f"TensorRT {version} is not in the support table; supported: "
                        f"{', '.join(row.label for row in SUPPORT)}")
    return family


def get_support(version: str | None) -> TensorRTSupport:
    family = family_of(version) if version else DEFAULT_FAMILY
    row = next(row for row in SUPPORT if row.family == family)
    if family in DLA_FROM and version:
        first, jetpack = DLA_FROM[family]
        numbers = tuple(int(part) for part in re.findall(r"\d+", str(version))[:2])
        if len(numbers) == 2 and numbers >= first:
            row = replace(row, dla=True, jetpack=jetpack)
    return row


def same_family(first: str, second: str) -> bool:
    return family_of(first) == family_of(second)


def version_from_trtexec_banner(text: str) -> str | None:
    """trtexec starts every run with '&&&& RUNNING TensorRT.trtexec [TensorRT v8602]' (8.6.2) or
    '[TensorRT v100300]' (10.3.0): the version of the trtexec that ran."""
    match = re.search(r"TensorRT\.trtexec \[TensorRT v(\d+)\]", text)
    if not match:
        return None
    number = int(match.group(1))
    if number >= 100000:
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"
