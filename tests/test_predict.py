import json

import cv2
import numpy as np
import pytest

from edge_fer.cli import main
from edge_fer.predict import FaceDetector, PredictSettings
from edge_fer.runtimes import runtime_for
from tests.helpers import REPO

SIDE = 160
FACE_PHOTO = REPO / "tests" / "fixtures" / "detect" / "astronaut-face.png"  # public domain (README there)


def detectable_faces(count: int) -> list[np.ndarray]:
    """One real face photo and its mirrored, darker and brighter copies, each found by the detector alone (its
    recall is not under test)."""
    photo = cv2.imread(str(FACE_PHOTO), cv2.IMREAD_GRAYSCALE)
    face = cv2.resize(photo[30:160, 40:170], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    variants = [face, np.ascontiguousarray(face[:, ::-1]), np.clip(face * 0.8, 0, 255).astype(np.uint8),
                np.clip(face * 0.9 + 30, 0, 255).astype(np.uint8)]
    detector = FaceDetector(PredictSettings())
    for variant in variants[:count]:
        alone = np.full((SIDE + 100, SIDE + 100), 90, np.uint8)
        alone[50:50 + SIDE, 50:50 + SIDE] = variant
        assert len(detector.detect(alone)) == 1, "the fixture face is no longer found alone"
    return variants[:count]


def compose(faces: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    canvas = np.full((2 * SIDE + 120, 2 * SIDE + 200, 3), 90, np.uint8)
    places = []
    for index, face in enumerate(faces):
        x, y = 40 + (index % 2) * (SIDE + 120), 40 + (index // 2) * (SIDE + 40)
        canvas[y:y + SIDE, x:x + SIDE] = face[..., None]
        places.append((x, y, SIDE, SIDE))
    return canvas, places


def overlap(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / float(aw * ah + bw * bh - w * h)


def own_label(artifact, canvas, box, classes) -> str:
    """The model's label for exactly that crop, computed here without edge_fer.predict."""
    x, y, w, h = box
    grey = canvas[y:y + h, x:x + w, 0]
    with runtime_for(artifact) as runner:
        size = runner.input_spec.height
        batch = np.repeat(cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)[None, ..., None], 3, axis=-1)
        return classes[int(np.argmax(runner.infer(batch.astype(np.float32))[0]))]


def test_finds_every_face_and_labels_it_as_the_model_does(exported, tmp_path, capsys):
    _, results = exported
    artifact = results["tflite-int8"]["path"]
    canvas, places = compose(detectable_faces(4))
    cv2.imwrite(str(tmp_path / "group.png"), canvas)
    assert main(["predict", str(tmp_path / "group.png"), "--artifact", artifact, "--out", str(tmp_path / "out"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    faces = result["faces"]
    assert len(faces) == 4
    classes = list(faces[0]["probabilities"])
    for place in places:
        face = max(faces, key=lambda f: overlap(f["box"], place))
        assert overlap(face["box"], place) > 0.4
        assert face["label"] == own_label(artifact, canvas, face["box"], classes)
        assert abs(sum(face["probabilities"].values()) - 1) < 0.05 and face["latency_ms"] > 0
    annotated = cv2.imread(result["annotated"])
    assert annotated.shape == canvas.shape and not np.array_equal(annotated, canvas)
    assert json.loads((tmp_path / "out" / "group.json").read_text())["faces"] == faces


def test_a_video_gives_one_json_line_per_frame(exported, tmp_path, capsys):
    _, results = exported
    canvas, _ = compose(detectable_faces(2))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (canvas.shape[1], canvas.shape[0]))
    for shift in range(8):
        writer.write(np.roll(canvas, 4 * shift, axis=1))
    writer.release()
    assert main(["predict", str(video), "--artifact", results["onnx-fp32"]["path"], "--out", str(tmp_path / "out"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    lines = [json.loads(line) for line in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert summary["frames"] == 8 and [line["frame"] for line in lines] == list(range(8))
    assert sum(len(line["faces"]) for line in lines) >= 12
    capture = cv2.VideoCapture(summary["annotated"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    capture.release()


def test_no_face_is_a_result_not_an_error(exported, tmp_path, capsys):
    _, results = exported
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((200, 300, 3), 128, np.uint8))
    assert main(["predict", str(tmp_path / "wall.png"), "--artifact", results["tflite-fp32"]["path"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["faces"] == []


@pytest.mark.hostile("malformed-input")
def test_bad_inputs_are_one_line(exported, tmp_path, capsys):
    _, results = exported
    (tmp_path / "broken.png").write_text("not an image")
    assert main(["predict", str(tmp_path / "broken.png"), "--artifact", results["tflite-fp32"]["path"]]) == 2
    assert "broken.png: cannot decode image" in capsys.readouterr().err
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((50, 50, 3), 128, np.uint8))
    (tmp_path / "model-onnx-fp32.onnx").write_text("garbage")
    assert main(["predict", str(tmp_path / "ok.png"), "--artifact", str(tmp_path / "model-onnx-fp32.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["predict", str(tmp_path / "nothing.png"), "--artifact", results["tflite-fp32"]["path"]]) == 2


def test_no_detect_classifies_each_face_crop_whole(exported, tmp_path, capsys):
    from edge_fer.data import load_dataset

    _, results = exported
    artifact = results["tflite-fp32"]["path"]
    faces = load_dataset("synthetic", None, train_count=1, valid_count=1, test_count=3).splits["test"]
    for index, image in enumerate(faces.images):
        cv2.imwrite(str(tmp_path / f"face-{index}.png"), image[..., 0])
    assert main(["predict", str(tmp_path), "--artifact", artifact, "--no-detect", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert len(predicted) == 3
    for result in predicted:
        (face,) = result["faces"]
        assert face["box"] == [0, 0, 48, 48]
        canvas = cv2.imread(result["input"])
        assert face["label"] == own_label(artifact, canvas, face["box"], list(face["probabilities"]))


def tiny_model(tmp_path):
    from tests.bench.test_trust import tiny_onnx

    return tiny_onnx(tmp_path / "model-onnx-fp32.onnx")


@pytest.mark.hostile("bounded")
def test_a_video_with_huge_frames_is_refused_before_a_frame_is_decoded(tmp_path, capsys):
    video = tmp_path / "huge.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 1, (8000, 8000))
    writer.write(np.zeros((8000, 8000, 3), np.uint8))
    writer.release()
    assert video.stat().st_size < 1_000_000  # 405 KB on disk, 192 MB a frame, gigabytes in the cascade
    assert main(["predict", str(video), "--artifact", str(tiny_model(tmp_path))]) == 2
    assert "frames are 8000x8000, above the 40,000,000-pixel limit" in capsys.readouterr().err


@pytest.mark.hostile("bounded")
def test_face_detection_sees_a_bounded_image_and_answers_in_the_photos_pixels(monkeypatch):
    from edge_fer.predict import DETECT_PIXELS, FaceDetector, PredictSettings

    detector = FaceDetector(PredictSettings())
    seen = []

    def cascade(grey, **kwargs):
        seen.append(grey.shape)
        return np.array([[100, 200, 300, 300]]), None, np.array([[1.0]])

    monkeypatch.setattr(detector, "cascade", type("Cascade", (), {"detectMultiScale3": staticmethod(cascade)})())
    boxes = detector.detect(np.zeros((6000, 6600), np.uint8))
    assert seen[0][0] * seen[0][1] <= DETECT_PIXELS and seen[0][0] < 6000
    scale = 6000 / seen[0][0]
    [box] = boxes
    assert all(abs(got - v * scale) <= 2 for got, v in zip(box, (100, 200, 300, 300)))  # the photo's pixels


@pytest.mark.hostile("half-written")
def test_an_interrupted_video_leaves_nothing_half_written(tmp_path, monkeypatch):
    from edge_fer.predict import Predictor, PredictSettings, predict_video

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 64))
    for _ in range(5):
        writer.write(np.zeros((64, 64, 3), np.uint8))
    writer.release()
    predictor = Predictor(tiny_model(tmp_path), PredictSettings())
    calls = []

    def faces_then_ctrl_c(frame):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(predictor, "faces", faces_then_ctrl_c)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        predict_video(predictor, video, out)
    assert list(out.iterdir()) == []


@pytest.mark.hostile("half-written")
def test_predict_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys):
    from tests.helpers import small_disk, write_png

    with small_disk(tmp_path / "full", "12k") as full:
        photo = write_png(tmp_path / "face.png", size=(400, 400), mode="RGB")
        assert main(["predict", str(photo), "--artifact", str(tiny_model(tmp_path)), "--no-detect", "--out", str(full)]) == 2
        assert "No space left on device" in capsys.readouterr().err
        assert list(full.iterdir()) == []


@pytest.mark.hostile("tracebacks")
def test_a_model_that_cannot_allocate_what_it_asks_is_one_line(tmp_path, capsys):
    """ConstantOfShape of 2^34 floats: onnxruntime refuses the 64 GiB buffer; predict says so in one line."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tests.bench.test_trust import CLASSES
    from tests.helpers import write_png

    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["total"], keepdims=1),
             helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Mul", ["mean", "total"], ["scaled"]),
             helper.make_node("Unsqueeze", ["scaled", "axes"], ["column"]),
             helper.make_node("Tile", ["column", "repeats"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    constants = [numpy_helper.from_array(np.array([1 << 34], np.int64), "shape"),
                 numpy_helper.from_array(np.array([1], np.int64), "axes"), numpy_helper.from_array(np.array([1, 7], np.int64), "repeats")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 16, 16, 3])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 7])], constants)
    model = tmp_path / "model-onnx-fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    (tmp_path / "model-onnx-fp32.onnx.json").write_text(json.dumps({"format": "onnx-fp32", "classes": CLASSES, "image_size": 16}))
    assert main(["predict", str(write_png(tmp_path / "face.png")), "--artifact", str(model), "--no-detect"]) == 2
    error = capsys.readouterr().err.strip()
    assert "the model failed to run" in error and "\n" not in error


def test_crops_are_listed_in_100_columns_and_annotated_large_enough_to_read(exported, tmp_path, capsys):
    from edge_fer.data import load_dataset

    _, results = exported
    faces = load_dataset("synthetic", None, train_count=1, valid_count=1, test_count=2).splits["test"]
    folder = tmp_path / "a folder with a long name that a narrow table would have to wrap somewhere"
    folder.mkdir()
    for index, image in enumerate(faces.images):
        cv2.imwrite(str(folder / f"face-{index}.png"), image[..., 0])
    artifact = results["tflite-fp32"]["path"]
    assert main(["predict", str(folder), "--artifact", artifact, "--no-detect"]) == 0
    table = capsys.readouterr().out
    assert max(map(len, table.splitlines())) <= 100 and "face-0.png" in table and "face-1.png" in table
    assert "annotated" not in table.splitlines()[2]  # no empty column without --out
    assert main(["predict", str(folder), "--artifact", artifact, "--no-detect", "--out", str(tmp_path / "out")]) == 0
    assert "face-0-annotated.png" in capsys.readouterr().out
    annotated = cv2.imread(str(tmp_path / "out" / "face-0-annotated.png"))
    assert annotated.shape[1] >= 320 and annotated.shape[0] == annotated.shape[1]  # 48x48, enlarged 7 times


def test_a_label_at_the_right_edge_is_moved_in_whole():
    from edge_fer.predict import annotate

    image = np.zeros((200, 400, 3), np.uint8)
    face = {"box": [340, 100, 60, 60], "label": "happiness", "score": 0.97}
    canvas = annotate(image, [face])
    (width, _), _ = cv2.getTextSize("happiness 0.97", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    band = np.where((canvas[:100] == (40, 200, 40)).all(axis=-1).any(axis=0))[0]
    assert band.max() == 399 and band.max() - band.min() + 1 == width + 5  # the whole label, not its left part
