"""`edge-fer debug precision` on tiny models where one layer is made badly quantizable on purpose: one output
channel of `outlier` is scaled up a hundredfold, so a per-tensor int8 range crushes its other channels. The
debugger must rank that layer first, and keeping it in float must win the accuracy back."""

import json

import numpy as np
import pytest

from edge_fer.cli import main

OUTLIER = 100.0


def images(count=48, size=16, seed=0):
    """Each image one random colour with noise: pooled features that differ between images, so the tiny models'
    top classes are not near-tied and an int8 file's flips come from the outlier, not from rounding of ties."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0, 255, (count, 1, 1, 3))
    return np.clip(colours + rng.normal(0, 20, (count, size, size, 3)), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def tflite_pair(tmp_path_factory):
    """A float and an int8 (post-training, per-tensor activations) TFLite file of one small Keras model."""
    import tf_keras as keras

    from edge_fer.export.converters import calibrate_on, converted_to_tflite, keras_to_tflite

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="first")(x)
    x = keras.layers.Conv2D(8, 1, name="outlier")(x)
    x = keras.layers.Conv2D(8, 1, name="mix")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    kernel, bias = model.get_layer("outlier").get_weights()
    kernel[..., 0] *= OUTLIER
    model.get_layer("outlier").set_weights([kernel, bias])
    kernel, bias = model.get_layer("mix").get_weights()
    kernel[:, :, 0, :] = 0.0  # the next layer reads only the channels the outlier's range crushes
    model.get_layer("mix").set_weights([kernel, bias])
    folder = tmp_path_factory.mktemp("tflite")
    (folder / "float.tflite").write_bytes(keras_to_tflite(model, "fp32"))
    int8 = converted_to_tflite(model, lambda converter: calibrate_on(converter, images(64, seed=1)))  # float i/o
    (folder / "int8.tflite").write_bytes(int8)
    return folder


def test_the_outlier_layer_of_a_tflite_file_is_ranked_first(tflite_pair, tmp_path):
    from edge_fer.debug.precision import debug_precision

    result = debug_precision(tflite_pair / "int8.tflite", tflite_pair / "float.tflite", images(), tmp_path / "out")
    layers = {row["position"]: row for row in result["layers"]}
    first = layers[result["ranked"][0]]
    assert first["layer"] == "outlier", [layers[p]["layer"] for p in result["ranked"]]
    assert first["noise_share"] > 0.5 and first["sqnr_db"] < min(row["sqnr_db"] for row in layers.values()
                                                                  if row["layer"] in ("scale", "first"))
    assert (tmp_path / "out" / "precision-by-layer.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "out" / "precision.json").read_text())["ranked"] == result["ranked"]


def tiny_onnx(path):
    """Conv -> Conv (one output channel 100x) -> Conv -> GlobalAveragePool -> Flatten -> Gemm -> Softmax, NCHW."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "w2": rng.normal(0, 0.3, (8, 8, 1, 1)),
               "w3": rng.normal(0, 0.3, (8, 8, 1, 1)), "w4": rng.normal(0, 0.3, (8, 4)), "b4": np.zeros(4)}
    weights["w2"][0] *= OUTLIER
    weights["w3"][:, 0] = 0.0  # the next layer reads only the channels the outlier's range crushes
    nodes = [helper.make_node("Transpose", ["pixels"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Mul", ["nchw", "scale"], ["scaled"]),
             helper.make_node("Conv", ["scaled", "w1"], ["first"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["first", "w2"], ["outlier"], name="outlier_conv"),
             helper.make_node("Conv", ["outlier", "w3"], ["mix"], name="mix_conv"),
             helper.make_node("GlobalAveragePool", ["mix"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w4", "b4"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"])]
    initializers = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()]
    initializers.append(numpy_helper.from_array(np.array(1 / 255.0, np.float32), "scale"))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 16, 16, 3])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 4])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def quantize(source, target, exclude=()):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"pixels": image[None]} for image in images(64, seed=1)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=False, nodes_to_exclude=list(exclude))
    return target


def test_the_outlier_layer_of_a_qdq_file_is_ranked_first_and_keeping_it_float_recovers(tmp_path, capsys):
    import onnxruntime as ort

    source = tiny_onnx(tmp_path / "float.onnx")
    quantized = quantize(source, tmp_path / "int8.onnx")
    assert main(["debug", "precision", str(quantized), "--reference", str(source), "--images", "48",
                 "--out", str(tmp_path / "debug"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    layers = {row["position"]: row for row in result["layers"]}
    first = layers[result["ranked"][0]]
    assert (first["op"], first["layer"]) == ("Conv", "Conv#2"), [layers[p]["layer"] for p in result["ranked"]]

    # the output the ranking names kept in float (the layer, and the one reading it, which would quantize it again
    # on its input): the int8 file agrees with the float one again
    kept = quantize(source, tmp_path / "mixed.onnx", exclude=["outlier_conv", "mix_conv"])
    batch = {"pixels": images(200, seed=2)}
    outputs = {name: ort.InferenceSession(str(path)).run(None, batch)[0]
               for name, path in (("float", source), ("int8", quantized), ("mixed", kept))}
    agree = {name: float(np.mean(outputs[name].argmax(1) == outputs["float"].argmax(1))) for name in ("int8", "mixed")}
    error = {name: float(np.abs(outputs[name] - outputs["float"]).mean()) for name in ("int8", "mixed")}
    assert agree["int8"] < 0.8 and agree["mixed"] >= 0.95, agree
    assert error["mixed"] < 0.2 * error["int8"], error


def test_bad_requests_are_one_line_errors(tflite_pair, tmp_path, capsys):
    source, tflite = tiny_onnx(tmp_path / "float.onnx"), tflite_pair / "float.tflite"
    for argv, message in ((["missing.onnx", "--reference", str(source)], "does not exist"),
                          ([str(source), "--reference", str(source), "--images", "0"], "--images must be from 1"),
                          ([str(source), "--reference", str(tflite)], "an ONNX file compares with an ONNX reference")):
        assert main(["debug", "precision", *argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
