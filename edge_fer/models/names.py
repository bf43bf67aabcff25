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
