"""Which Keras layer a converted tensor came from. The TFLite and ONNX converters keep the Keras layer names in
their tensor names (`patt_lite/conv_dw_3_relu/Relu6;...`, after QAT `patt_lite/quant_conv_dw_3_relu/...`), which
is how a converted file's layers are found again by the names a person knows them by."""

from __future__ import annotations


def layer_of_tensor(tensor_name: str) -> str | None:
    """'patt_lite/quant_conv1_relu/Relu6;patt_lite/...' -> 'conv1_relu'; None for a name without a layer."""
    parts = tensor_name.split(";")[0].split("/")
    if len(parts) < 2 or not parts[1]:
        return None
    return parts[1].removeprefix("quant_").split(":")[0]


FUSED_SUFFIXES = ("_relu", "_bn")  # conv_dw_3 -> conv_dw_3_bn -> conv_dw_3_relu: one op after conversion


def layer_family(layer: str) -> str:
    """'conv_dw_3_relu' and 'conv_dw_3_bn' -> 'conv_dw_3': a convolution, its batch norm and its activation, which
    TFLite fuses into one op (named after the activation) and ONNX keeps as a Conv (named after the convolution)
    and a Clip. Naming any of the three names all three, so one `keep_float` list means the same in both."""
    for suffix in FUSED_SUFFIXES:
        if layer.endswith(suffix):
            return layer[: -len(suffix)]
    return layer
