"""`edge-fer predict`: faces found and classified in images, folders and videos."""

from __future__ import annotations

from pathlib import Path

from edge_fer import ui
from edge_fer.cli.common import add_json_flag
from edge_fer.errors import UserError


def register(commands) -> None:
    predict = commands.add_parser("predict", help="find faces in an image, a folder or a video and classify each")
    predict.add_argument("input", help="an image, a folder of images, or a video file")
    predict.add_argument("--artifact", required=True, help="any exported artifact (.tflite, .onnx, .engine) or model folder")
    predict.add_argument("--out", help="folder for annotated images/videos and JSON")
    predict.add_argument("--margin", type=float, default=0.15, help="extra border around each face box, a fraction of it")
    predict.add_argument("--threads", type=int, help="runtime threads")
    predict.add_argument("--no-detect", action="store_true", help="each input is already a face crop: classify the whole image")
    add_json_flag(predict)
    predict.set_defaults(run=cmd_predict)


def cmd_predict(args) -> int:
    from edge_fer.predict import PredictSettings, predict

    if not 0 <= args.margin <= 1:
        raise UserError(f"--margin must be from 0 to 1 (a fraction of the face box), got {args.margin}")
    results = predict(args.input, args.artifact, args.out, PredictSettings(margin=args.margin, threads=args.threads,
                                                                                  detect=not args.no_detect))
    if args.json:
        ui.print_json(results)
        return 0
    print_predictions(results, args)
    return 0


def shown_path(path: str, base: Path) -> str:
    """A path as the user gave it, shortened to its place in the input folder."""
    return Path(path).relative_to(base).as_posix() if base.is_dir() and Path(path).is_relative_to(base) else Path(path).name


def print_predictions(results: list[dict], args) -> None:
    """One row per face (or per video), in 100 columns: the file, the label, its score, where, how long."""
    base, rows = Path(args.input), []
    for result in results:
        name = shown_path(result["input"], base)
        annotated = [Path(result["annotated"]).name] if args.out and result.get("annotated") else [] if not args.out else ["-"]
        if "frames" in result:
            rows.append([name, f"{result['faces']} in {result['frames']} frames", None, None, None, *annotated])
            continue
        for face in result["faces"] or [None]:
            if face is None:
                rows.append([name, "no face", None, None, None, *annotated])
            else:
                x, y, w, h = face["box"]
                rows.append([name, face["label"], round(face["score"], 2), f"{w}x{h} at {x},{y}",
                             round(face["latency_ms"], 1), *annotated])
    columns = ["input", "expression", "score", "face box", "ms", *(["annotated"] if args.out else [])]
    caption = f"annotated images and JSON in {args.out}" if args.out else "--out FOLDER writes annotated images and JSON"
    ui.narrow(ui.out, 100).print(ui.table(f"predict with {Path(args.artifact).name}", columns, rows, caption=caption))
