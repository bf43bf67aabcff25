import json

import numpy as np
import onnx
import pytest

from edge_fer.artifacts import file_sha256, read_metadata
from edge_fer.cli import main
from edge_fer.compare import agreement, run_batches
from edge_fer.errors import UserError
from edge_fer.export.builders import BUILDERS
from edge_fer.export.engines import EngineBuilder
from edge_fer.export.exporter import ExportSettings, export
from edge_fer.formats import export_formats, get_format, parse_formats
from edge_fer.runtimes import runtime_for
from tests.conftest import TOY_FLOORS

CPU_FORMATS = [f.name for f in export_formats() if not f.needs_gpu and not f.on_request]


def test_every_format_has_one_builder():
    from edge_fer.export.tensorrt import engine_source
    from edge_fer.targets.tensorrt_support import SUPPORT

    for export_format in export_formats():
        if export_format.needs_gpu:
            sources = {export_format.engine_from or engine_source(export_format.precision, row) for row in SUPPORT}
            assert {get_format(source).suffix for source in sources} == {".onnx"}
        else:
            assert export_format.name in BUILDERS
    assert [f.name for f in parse_formats("cpu")] == CPU_FORMATS
    assert len(parse_formats("all")) == len([f for f in export_formats() if not f.on_request])
    assert [f.name for f in parse_formats("tflite-mixed")] == ["tflite-mixed"]  # made when named
    with pytest.raises(UserError, match="did you mean 'tflite-int8'"):
        parse_formats("tflite-int9")


def test_every_cpu_format_exports_and_agrees(exported):
    _, results = exported
    for name in CPU_FORMATS:
        result = results[name]
        assert result["status"] == "passed", result
        floor = TOY_FLOORS[get_format(name).precision]
        assert result["top1_agreement"] >= floor, result
    assert not any(name.startswith("tensorrt") for name in results)  # the fixture exports CPU formats only
    for name in ("tflite-int8-qat", "onnx-int8-qdq"):  # checked against the QAT model, float agreement beside it
        assert results[name]["reference"] == "keras QAT model" and results[name]["agreement_with_float"] >= 0.9
    assert results["tflite-int8"]["reference"] == "keras float model"


def test_a_mixed_file_keeps_the_named_layers_in_float_and_the_rest_in_int8(exported, tmp_path, capsys):
    from edge_fer.debug.taps import TfliteTap

    root, _ = exported
    keep = ["conv_dw_3_relu", "token_attention"]
    results = export(root / "float", tmp_path, ExportSettings(formats="tflite-mixed", keep_float=keep,
                                                              calibration_images=64, parity_images=200))
    assert results[0]["status"] == "passed", results[0]
    path = tmp_path / "model-tflite-mixed.tflite"
    assert read_metadata(path)["keep_float"] == keep
    tap = TfliteTap(path)
    kinds = {layer.key: tap.details[tap.indices[layer.key]]["dtype"] for layer in tap.layers}
    assert all(kinds[name] == np.float32 for name in keep), kinds
    assert kinds["conv_dw_2_relu"] == np.int8 and kinds["conv_dw_4_relu"] == np.int8, kinds

    assert main(["export", str(root / "float"), "--formats", "tflite-mixed", "--out", str(tmp_path / "none")]) == 2
    assert "tflite-mixed keep the layers in export.keep_float in float: name them" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # refused before any work
    assert main(["export", str(root / "float"), "--formats", "tflite-mixed", "--keep-float", "conv_dw_33_relu",
                 "--out", str(tmp_path / "wrong"), "--json"]) == 1  # that format failed, with the reason
    reason = json.loads(capsys.readouterr().out)[0]["reason"]
    assert "no layer 'conv_dw_33_relu' in this model; its layers: " in reason and "conv_dw_3_relu" in reason


def test_a_mixed_onnx_file_keeps_the_named_layers_nodes_float_and_says_so_to_tensorrt(exported, tmp_path):
    """onnx-mixed-qdq: the named layers' nodes (convolution and activation together) read float weights and no
    Q/DQ of their own, every other Conv reads Q/DQ'd weights; the record lists the float nodes, so TensorRT's rule
    check accepts them and the engine plan constrains exactly those layers to fp16."""
    from edge_fer.export.engines import engine_plan
    from edge_fer.export.tensorrt_rules import check_tensorrt_file
    from edge_fer.targets.tensorrt_support import get_support

    root, _ = exported
    results = export(root / "float", tmp_path, ExportSettings(formats="onnx-mixed-qdq", keep_float=["conv_dw_3_relu"],
                                                              calibration_images=64, parity_images=200, floors=TOY_FLOORS))
    assert results[0]["status"] == "passed", results[0]
    path = tmp_path / "model-onnx-mixed-qdq.onnx"
    record = read_metadata(path)
    assert record["keep_float"] == ["conv_dw_3_relu"]
    nodes = set(record["keep_float_nodes"])
    assert nodes and all("/conv_dw_3/" in name or "/conv_dw_3_relu/" in name for name in nodes), nodes
    model = onnx.load(str(path))
    producer = {output: node for node in model.graph.node for output in node.output}
    weights = {node.name: producer.get(node.input[1]) for node in model.graph.node if node.op_type == "Conv"}
    float_convs = {name for name, source in weights.items() if source is None or source.op_type != "DequantizeLinear"}
    assert float_convs == {name for name in nodes if name in weights} and len(weights) > len(float_convs) + 5
    assert check_tensorrt_file(path, get_support("10.3")).passed
    stripped = onnx.load(str(path))
    del stripped.metadata_props[:]  # without its record the same float convolutions are problems
    from edge_fer.export.tensorrt_rules import check_tensorrt
    assert not check_tensorrt(stripped, get_support("10.3")).passed

    plan = engine_plan(path, "int8", tensorrt_version="10.3")
    spec = next(arg for arg in plan["trtexec_command"] if arg.startswith("--layerPrecisions="))
    assert sorted(spec.removeprefix("--layerPrecisions=").split(",")) == sorted(f"{name}:fp16" for name in nodes)
    assert "--precisionConstraints=prefer" in plan["trtexec_command"]
    assert not any(arg.startswith("--layerPrecisions") for arg in engine_plan(path, "int8", tensorrt_version="8.2.1")["trtexec_command"])


def test_auto_keeps_the_layers_the_debugger_ranks_first(exported, tmp_path, capsys):
    from edge_fer.debug.auto import layers_by_harm

    root, _ = exported
    assert main(["export", str(root / "float"), "--formats", "tflite-mixed", "--keep-float", "auto:2",
                 "--calibration-images", "64", "--parity-images", "100", "--out", str(tmp_path), "--json"]) == 0
    capsys.readouterr()
    record = read_metadata(tmp_path / "model-tflite-mixed.tflite")
    chosen = record["keep_float_chosen"]
    assert chosen["request"] == "auto:2" and record["keep_float"] == chosen["ranking"][:2]
    assert layers_by_harm({"layers": [
        {"position": 0, "layer": "a", "op": "CONV_2D", "sqnr_db": 30.0, "added_db": 0.0, "added_noise": 0.001,
         "noise_share": 0.1, "cosine": 1.0, "max_abs_error": 0.1, "range_error": 0.01},
        {"position": 1, "layer": "b", "op": "CONV_2D", "sqnr_db": 10.0, "added_db": 20.0, "added_noise": 0.099,
         "noise_share": 0.9, "cosine": 0.9, "max_abs_error": 1.0, "range_error": 0.1}]}) == ["b", "a"]
    for bad in ("auto:0", "auto:x", "auto", "conv_dw_3_relu,auto:1"):
        assert main(["export", str(root / "float"), "--formats", "tflite-mixed", "--keep-float", bad,
                     "--out", str(tmp_path / "bad")]) == 2
        assert "give Keras layer names" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_int8_artifacts_are_about_a_quarter_of_fp32(exported):
    _, results = exported
    for float_name, int8_name in (("tflite-fp32", "tflite-int8"), ("tflite-fp32", "tflite-int8-qat"),
                                  ("onnx-fp32", "onnx-int8-qdq"), ("onnx-fp32", "onnx-int8-ptq")):
        ratio = results[int8_name]["size_bytes"] / results[float_name]["size_bytes"]
        assert 0.2 < ratio < 0.35, (int8_name, ratio)


def test_tflite_int8_qat_is_fully_integer(exported):
    from ai_edge_litert.interpreter import Interpreter

    root, _ = exported
    interpreter = Interpreter(model_path=str(root / "artifacts" / "model-tflite-int8-qat.tflite"))
    tensors = interpreter.get_tensor_details()
    ops = interpreter._get_ops_details()
    assert {op["op_name"] for op in ops} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"}
    float_ops = []
    for op in ops:
        dtypes = {tensors[i]["dtype"] for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0}
        if any(np.issubdtype(d, np.floating) for d in dtypes):
            float_ops.append(op["op_name"])
    assert float_ops == []
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


def test_onnx_qdq_wraps_every_conv_and_matmul_and_matches_tflite_qat(exported):
    root, _ = exported
    model = onnx.load(str(root / "artifacts" / "model-onnx-int8-qdq.onnx"))
    producers = {output: node.op_type for node in model.graph.node for output in node.output}
    compute = [node for node in model.graph.node if node.op_type in ("Conv", "MatMul", "Gemm")]
    assert len(compute) >= 20
    for node in compute:
        assert [producers.get(name) for name in node.input[:2]] == ["DequantizeLinear", "DequantizeLinear"], node.name
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def requantized(tensor, hops=3):  # through the fused activation / bias add, the output meets a QuantizeLinear
        nodes = consumers.get(tensor, [])
        return any(n.op_type == "QuantizeLinear" or (hops and n.op_type in ("Clip", "Relu", "Add")
                                                     and requantized(n.output[0], hops - 1)) for n in nodes)

    assert all(requantized(node.output[0]) for node in compute)

    from edge_fer.data import load_dataset
    from edge_fer.data.preprocess import to_model_input

    images = to_model_input(load_dataset("synthetic", train_count=7, valid_count=7, test_count=100, seed=5)
                            .splits["test"].images, 64)
    with runtime_for(root / "artifacts" / "model-onnx-int8-qdq.onnx") as onnx_runner:
        onnx_probabilities = run_batches(onnx_runner, images)
    with runtime_for(root / "artifacts" / "model-tflite-int8-qat.tflite") as tflite_runner:
        tflite_probabilities = run_batches(tflite_runner, images)
    result = agreement("qdq-vs-qat", tflite_probabilities, onnx_probabilities)
    # the TensorRT form gives every asymmetric range (tfmot's ReLU outputs, TFLite's softmax at zero point -128)
    # the symmetric range over the same values, at half the resolution: probabilities move a little more
    # (the largest difference is one image's: up to 0.5 by the CPU the toy trained on; the mean is the file's)
    assert result.top1_agreement >= 0.97 and result.max_abs_diff < 0.6 and result.mean_abs_diff < 0.01, result


def test_every_artifact_carries_its_metadata(exported):
    root, results = exported
    float_hash = file_sha256(root / "float" / "model.keras")
    for name in CPU_FORMATS:
        meta = read_metadata(results[name]["path"])
        assert meta["format"] == name and meta["image_size"] == 64 and meta["classes"][0] == "neutral"
        assert meta["preprocessing"]["normalization"].startswith("inside the model")
        assert meta["file_sha256"] == file_sha256(results[name]["path"])
        if get_format(name).source == "float":
            assert meta["source_model_sha256"] == float_hash
    embedded = {p.key: p.value for p in onnx.load(results["onnx-fp32"]["path"]).metadata_props}
    assert json.loads(embedded["edge_fer"])["format"] == "onnx-fp32"
    assert json.loads(embedded["classes"])[1] == "happiness"
    report = json.loads((root / "artifacts" / "export.json").read_text())
    assert report["parity_images"] == 200


def test_the_grey_artifact_takes_one_channel_and_runs_only_its_stem_in_float(exported):
    from ai_edge_litert.interpreter import Interpreter

    root, results = exported
    path = root / "artifacts" / "model-tflite-int8-grey.tflite"
    interpreter = Interpreter(model_path=str(path))
    detail = interpreter.get_input_details()[0]
    assert list(detail["shape"][1:]) == [64, 64, 1] and detail["dtype"] == np.float32
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    conv_weights = [tensors[op["inputs"][1]]["dtype"] for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert conv_weights[0] == np.float32 and set(conv_weights[1:]) == {np.int8}
    assert read_metadata(path)["input_shape"] == [64, 64, 1]
    grey = np.random.default_rng(3).integers(0, 256, (6, 64, 64, 1)).astype(np.float32)
    with runtime_for(path) as runner:  # RGB with R = G = B is the same image
        np.testing.assert_array_equal(runner.infer(np.repeat(grey, 3, axis=-1)), runner.infer(grey))
    assert results["tflite-int8-grey"]["top1_agreement"] >= 0.97


def test_grey_formats_are_skipped_for_a_colour_dataset(exported, tmp_path, monkeypatch):
    from edge_fer.export.exporter import COLOUR_DATASET_MESSAGE, ExportContext

    monkeypatch.setattr(ExportContext, "dataset_is_grey", property(lambda ctx: False))
    root, _ = exported
    settings = ExportSettings(formats="tflite-int8-grey,tflite-fp32", calibration_images=16, parity_images=20)
    grey, fp32 = export(root / "float", tmp_path, settings)
    assert grey == {"format": "tflite-int8-grey", "status": "skipped", "reason": COLOUR_DATASET_MESSAGE}
    assert fp32["status"] == "passed" and not (tmp_path / "model-tflite-int8-grey.tflite").exists()


@pytest.mark.hostile("exit-codes")
def test_failed_check_is_marked_and_the_command_exits_non_zero(exported, tmp_path, capsys):
    root, _ = exported
    settings = ExportSettings(formats="tflite-dynamic,tflite-fp32", calibration_images=16, parity_images=50,
                              floors={"dynamic": 1.01, "fp32": 0.99})
    results = export(root / "float", tmp_path, settings)
    assert [r["status"] for r in results] == ["failed-check", "passed"]
    assert (tmp_path / "model-tflite-dynamic.tflite").is_file()  # exported, but failed its check


def test_qat_formats_without_a_qat_model_fail_and_the_rest_go_on(exported, tmp_path):
    root, _ = exported
    settings = ExportSettings(formats="tflite-int8-qat,onnx-fp32", calibration_images=16, parity_images=50)
    results = export(root / "float", tmp_path, settings)
    assert results[0]["status"] == "failed" and "edge-fer qat" in results[0]["reason"]
    assert results[1]["status"] == "passed"
    assert not list(tmp_path.glob(".partial-*"))


def test_cli_says_no_gpu_in_one_line_and_exports_the_rest(exported, tmp_path, capsys, monkeypatch):
    from edge_fer.export import exporter

    monkeypatch.setattr(exporter, "choose_engine_builder", lambda target: EngineBuilder(None, None))  # as on a CPU machine
    root, _ = exported
    code = main(["export", str(root / "float"), "--out", str(tmp_path), "--formats", "onnx-fp32,tensorrt-fp32,tensorrt-fp16",
                 "--parity-images", "20", "--calibration-images", "8"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if "no NVIDIA GPU" in line]
    assert len(lines) == 1 and lines[0].startswith("tensorrt-fp32, tensorrt-fp16:")
    assert (tmp_path / "model-onnx-fp32.onnx").is_file()


def test_a_target_on_tensorrt_8_2_gets_opset_13_and_its_rule_check(exported, tmp_path):
    root, _ = exported
    settings = ExportSettings(formats="onnx-fp32", parity_images=20, target="jetson-nano")
    [result] = export(root / "float", tmp_path, settings)
    assert result["status"] == "passed", result
    model = onnx.load(result["path"])
    assert max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")) == 13
    assert read_metadata(result["path"])["tensorrt_check"] == {"tensorrt": "8.2", "passed": True, "problems": [], "notes": []}


def test_onnx_that_fails_the_tensorrt_rules_is_failed_check(exported, tmp_path, monkeypatch):
    from edge_fer.export import converters

    root, _ = exported
    monkeypatch.setattr(converters, "qdq_to_tensorrt_qdq", lambda model: model)  # the raw TFLite-derived graph
    settings = ExportSettings(formats="onnx-int8-qdq", calibration_images=16, parity_images=20)
    [result] = export(root / "float", tmp_path, settings, qat_dir=root / "qat")
    assert result["status"] == "failed-check" and result["reason"].startswith("TensorRT 10.x: ")
    assert "keep biases float" in result["reason"] or "zero point" in result["reason"]


def test_onnxruntime_runs_the_tensorrt_form_qdq_file(exported, tmp_path):
    """Symmetric ReLU ranges (TensorRT's only kind) keep the Relu before each QuantizeLinear, so onnxruntime's CPU
    provider fuses few convolutions into QLinearConv and runs the rest in float between Q/DQ pairs: the file is
    for TensorRT; on a CPU the int8 TFLite files are the fast ones. It still runs, with every Conv kept."""
    import onnxruntime

    root, _ = exported
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(root / "artifacts" / "model-onnx-int8-qdq.onnx"), options,
                                 providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert ops.count("QLinearConv") + ops.count("Conv") + ops.count("FusedConv") >= 20


@pytest.mark.hostile("half-written")
@pytest.mark.parametrize("setting, value", [("calibration_images", -5), ("parity_images", -1), ("calibration_images", 0)])
def test_bad_export_counts_are_refused_before_any_file(tmp_path, setting, value):
    from edge_fer.errors import UserError
    from edge_fer.export.exporter import ExportSettings, export

    with pytest.raises(UserError, match=f"export.{setting}"):
        export(tmp_path / "no-model", tmp_path / "out", ExportSettings(formats="cpu", **{setting: value}))
    assert not (tmp_path / "out").exists()
