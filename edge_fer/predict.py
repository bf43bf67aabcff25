"""`edge-fer predict`: find faces (OpenCV's bundled Haar cascade), crop each with a margin, convert it to the
artifact's input and classify it through the runtime interface. Images, folders of images, and videos."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_fer import atomic
from edge_fer.artifacts import check_file_hash, check_probabilities, record_of
from edge_fer.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class PredictSettings:
    margin: float = 0.15  # extra border around each detected box, as a fraction of its size
    min_face: int = 24  # smallest face side in pixels the detector looks for
    scale_factor: float = 1.05
    min_neighbors: int = 3
    overlap: float = 0.3  # boxes overlapping more than this (IoU) are one face
    threads: int | None = None
    detect: bool = True  # False: each input is already a face crop (the whole image is the face)


DETECT_PIXELS = 4_000_000  # what the face cascade looks at: faces in a larger photo are found at this size


class FaceDetector:
    def __init__(self, settings: PredictSettings):
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise UserError(f"OpenCV's face cascade {path} could not be loaded")
        self.settings = settings

    def detect(self, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h); overlapping detections of one face are merged by non-maximum suppression. The
        cascade sees at most DETECT_PIXELS (its image pyramid of a 40 MP photo took 4 GB); boxes come back in the
        image's own pixels."""
        scale = min(1.0, (DETECT_PIXELS / max(1, grey.shape[0] * grey.shape[1])) ** 0.5)
        if scale < 1.0:
            small = cv2.resize(grey, (max(1, int(grey.shape[1] * scale)), max(1, int(grey.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
            return [tuple(int(round(v / scale)) for v in box) for box in self._detect(small)]
        return self._detect(grey)

    def _detect(self, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
        boxes, _, weights = self.cascade.detectMultiScale3(
            grey, scaleFactor=self.settings.scale_factor, minNeighbors=self.settings.min_neighbors,
            minSize=(self.settings.min_face, self.settings.min_face), outputRejectLevels=True)
        if len(boxes) == 0:
            return []
        boxes = [tuple(int(v) for v in box) for box in boxes]
        scores = np.ravel(weights).astype(float)
        scores = scores - scores.min() + 1.0  # NMSBoxes keeps scores above a non-negative threshold only
        keep = cv2.dnn.NMSBoxes(list(boxes), scores.tolist(), 0.0, self.settings.overlap)
        return [boxes[int(i)] for i in np.ravel(keep)]


def expand(box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = box
    dx, dy = int(round(w * margin)), int(round(h * margin))
    left, top = max(0, x - dx), max(0, y - dy)
    right, bottom = min(width, x + w + dx), min(height, y + h + dy)
    return left, top, right - left, bottom - top


def crop_to_input(image_bgr: np.ndarray, box, size: int, grey_model: bool) -> np.ndarray:
    """The crop as the artifact wants it: float32 RGB 0-255 at size×size (grey repeated where trained on grey)."""
    x, y, w, h = box
    crop = image_bgr[y:y + h, x:x + w]
    if grey_model:
        crop = np.repeat(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[..., None], 3, axis=-1)
    else:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)[None]


class Predictor:
    def __init__(self, artifact: str | Path, settings: PredictSettings):
        from edge_fer.runtimes import runtime_for

        artifact = Path(artifact)
        meta = record_of(artifact)
        if not meta or not meta.get("classes"):
            raise UserError(f"{artifact}: no metadata with class names beside it (expected {artifact.name}.json or model.json)")
        if artifact.is_file():
            check_file_hash(artifact, meta)
        self.artifact, self.classes = artifact, meta["classes"]
        self.grey_model = (meta.get("preprocessing") or {}).get("source_channels", 1) == 1
        self.detector = FaceDetector(settings)
        self.settings = settings
        self.runner = runtime_for(artifact, threads=settings.threads)
        try:
            self.runner.load()
        except UserError:
            raise
        except Exception as error:
            raise UserError(f"{artifact}: cannot load it as a model ({str(error).splitlines()[0][:200]})") from None
        self.size = self.runner.input_spec.height

    def classify(self, batch: np.ndarray) -> np.ndarray:
        """The model's output for a batch; a model that fails to run (an allocation it cannot make, an op the
        runtime refuses) is one line naming it, not a runtime's traceback."""
        try:
            return self.runner.infer(batch)
        except UserError:
            raise
        except Exception as error:
            message = " ".join(str(error).split())
            raise UserError(f"{self.artifact}: the model failed to run ({type(error).__name__}: {message[-200:]})") from None

    def faces(self, image_bgr: np.ndarray) -> list[dict]:
        height, width = image_bgr.shape[:2]
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        results = []
        if self.settings.detect:
            boxes = [expand(found, self.settings.margin, width, height) for found in self.detector.detect(grey)]
        else:
            boxes = [(0, 0, width, height)]
        for box in boxes:
            batch = crop_to_input(image_bgr, box, self.size, self.grey_model)
            started = time.perf_counter_ns()
            probabilities = check_probabilities(self.classify(batch), len(self.classes), str(self.artifact))[0]
            latency_ms = (time.perf_counter_ns() - started) / 1e6
            top = int(np.argmax(probabilities))
            results.append({"box": list(box), "label": self.classes[top], "score": float(probabilities[top]),
                            "probabilities": {c: float(p) for c, p in zip(self.classes, probabilities)},
                            "latency_ms": latency_ms})
        return results

    def close(self) -> None:
        self.runner.close()


MIN_ANNOTATED_WIDTH = 320  # a smaller image (a 48x48 crop) is enlarged first, so its label fits and reads


def annotate(image_bgr: np.ndarray, faces: list[dict], min_width: int = 0) -> np.ndarray:
    """The image with each face's box and label; enlarged (whole times, pixels kept sharp) to min_width."""
    factor = max(1, -(-min_width // image_bgr.shape[1])) if min_width else 1
    canvas = cv2.resize(image_bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST) if factor > 1 else image_bgr.copy()
    thickness = max(1, canvas.shape[1] // 400)
    for face in faces:
        x, y, w, h = (factor * value for value in face["box"])
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (40, 200, 40), thickness + 1)
        text = f"{face['label']} {face['score']:.2f}"
        scale = max(0.4, w / 250)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 4)
        left = max(0, min(x, canvas.shape[1] - tw - 5))  # moved in from the right edge, never cut off
        cv2.rectangle(canvas, (left, top), (left + tw + 4, top + th + base + 4), (40, 200, 40), -1)
        cv2.putText(canvas, text, (left + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas


def read_image(path: Path) -> np.ndarray:
    from edge_fer.data.images import check_image_file

    check_image_file(path)  # by the header: OpenCV would allocate a 20000x20000 image before saying anything
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: cannot read it as an image")
    return image


def write_atomic_image(path: Path, image: np.ndarray) -> None:
    """PNG bytes encoded in memory, then one atomic write: a full disk leaves neither a truncated PNG nor a
    partial file (cv2.imwrite reports a short write as success)."""
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise UserError(f"cannot encode {path}")
    atomic.write_bytes(path, encoded.tobytes())


def predict_image(predictor: Predictor, path: Path, out: Path | None) -> dict:
    image = read_image(path)
    faces = predictor.faces(image)
    result = {"input": str(path), "width": image.shape[1], "height": image.shape[0], "faces": faces}
    if out is not None:
        annotated = out / f"{path.stem}-annotated.png"
        write_atomic_image(annotated, annotate(image, faces, MIN_ANNOTATED_WIDTH))
        result["annotated"] = str(annotated)
        try:
            atomic.write_bytes(out / f"{path.stem}.json", json.dumps(result, indent=2).encode())
        except UserError:
            annotated.unlink(missing_ok=True)  # the pair or nothing
            raise
    return result


def predict_video(predictor: Predictor, path: Path, out: Path | None) -> dict:
    from edge_fer.data.images import MAX_IMAGE_PIXELS

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UserError(f"{path}: cannot open it as a video")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > MAX_IMAGE_PIXELS:  # from the container's header, before a frame is decoded
        capture.release()
        raise UserError(f"{path}: frames are {width}x{height}, above the {MAX_IMAGE_PIXELS:,}-pixel limit; downscale it first")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    lines_path = out / f"{path.stem}.jsonl" if out else None
    video_path = out / f"{path.stem}-annotated.mp4" if out else None
    partial_lines = atomic.partial_path(lines_path) if out else None
    partial_video = atomic.partial_path(video_path) if out else None
    frames = faces_total = 0
    lines = open(partial_lines, "w") if partial_lines else None
    finished = False
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            faces = predictor.faces(frame)
            record = {"frame": frames, "time_s": round(frames / fps, 4), "faces": faces}
            if lines:
                lines.write(json.dumps(record) + "\n")
                if writer is None:
                    writer = cv2.VideoWriter(str(partial_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
                writer.write(annotate(frame, faces))
            frames += 1
            faces_total += len(faces)
        if frames == 0:
            raise UserError(f"{path}: the video has no readable frames")
        if lines:
            lines.flush()
            os.fsync(lines.fileno())  # a full disk shows here, not as a truncated file renamed into place
        finished = True
    except OSError as error:
        raise UserError(f"cannot write the results of {path} into {out}: {error.strerror or error}") from None
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if lines:
            lines.close()
        if not finished:  # Ctrl-C, a full disk, no frames: nothing half-written stays behind
            for partial in (partial_lines, partial_video):
                if partial is not None:
                    partial.unlink(missing_ok=True)
    result = {"input": str(path), "frames": frames, "faces": faces_total, "fps": fps}
    if out is not None:
        os.replace(partial_lines, lines_path)
        os.replace(partial_video, video_path)
        result.update(jsonl=str(lines_path), annotated=str(video_path))
    return result


def predict(input_path: str | Path, artifact: str | Path, out: str | Path | None, settings: PredictSettings) -> list[dict]:
    input_path = Path(input_path)
    if not input_path.exists():
        raise UserError(f"input {input_path} does not exist")
    if input_path.is_dir():
        inputs = sorted(p for p in input_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        if not inputs:
            raise UserError(f"{input_path}: no images or videos in this folder")
    else:
        inputs = [input_path]
    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(artifact, settings)
    try:
        return [predict_video(predictor, p, out_dir) if p.suffix.lower() in VIDEO_SUFFIXES else predict_image(predictor, p, out_dir)
                for p in inputs]
    finally:
        predictor.close()
