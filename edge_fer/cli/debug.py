"""`edge-fer debug precision`: where a quantized file loses accuracy, layer by layer."""

from __future__ import annotations

from pathlib import Path

from edge_fer import ui
from edge_fer.cli.common import add_dataset_flags, add_json_flag, dataset_spec
from edge_fer.errors import UserError

MAX_IMAGES = 5000


def register(commands) -> None:
    debug = commands.add_parser("debug", help="find where a quantized file loses accuracy")
    tools = debug.add_subparsers(dest="tool", metavar="TOOL", required=True)
    precision = tools.add_parser(
        "precision", help="compare every layer of a quantized file with its float reference and rank the layers",
        description="Runs the quantized file and its float reference on the same images, compares every layer's "
                    "output (SQNR, cosine, max error over the output range) and ranks the layers by the error each "
                    "adds. TFLite files are read with every tensor kept; ONNX files through Polygraphy on onnxruntime.")
    precision.add_argument("artifact", help="the quantized file (.tflite or .onnx)")
    precision.add_argument("--reference", required=True,
                           help="the float model it was made from: a Keras model folder or .keras (for TFLite), a "
                                "tflite-fp32 file, or for ONNX the onnx-fp32 file")
    add_dataset_flags(precision, what="the images to compare on (default: synthetic faces)")
    precision.add_argument("--split", default="valid", help="the split to take images from (default valid)")
    precision.add_argument("--images", type=int, default=200, help=f"how many images (default 200, at most {MAX_IMAGES})")
    precision.add_argument("--top", type=int, default=12, help="layers shown, most added error first (default 12)")
    precision.add_argument("--out", help="folder for precision.json and the plot (default runs/debug/<artifact name>)")
    add_json_flag(precision)
    precision.set_defaults(run=cmd_precision)


def cmd_precision(args) -> int:
    from edge_fer.data.spec import DatasetSpec
    from edge_fer.debug.precision import LayerRow, debug_precision, ranked

    if not 1 <= args.images <= MAX_IMAGES:
        raise UserError(f"--images must be from 1 to {MAX_IMAGES}, got {args.images}")
    for path in (args.artifact, args.reference):
        if not Path(path).exists():
            raise UserError(f"{path}: does not exist")
    spec = dataset_spec(args) or DatasetSpec.of({"dataset": "synthetic"})
    dataset = spec.load()
    if args.split not in dataset.splits:
        raise UserError(f"--split {args.split}: {dataset.name} has the splits {', '.join(dataset.splits)}")
    images = dataset.splits[args.split].images[: args.images]
    out = Path(args.out or Path("runs") / "debug" / Path(args.artifact).name)
    with ui.progress() as bar:
        task = bar.add_task(f"comparing {len(images)} images layer by layer", total=len(images))
        result = debug_precision(args.artifact, args.reference, images, out,
                                 progress=lambda count: bar.advance(task, count))
    if args.json:
        ui.print_json(result)
        return 0
    rows = ranked([LayerRow(**row) for row in result["layers"]])[: args.top]
    ui.out.print(ui.table(
        f"{Path(args.artifact).name} against {Path(args.reference).name}: {len(images)} {dataset.name} {args.split} images",
        ["rank", "layer", "op", "place", "noise added", "SQNR dB", "lost dB", "cosine", "max err/range"],
        [[rank, row.layer, row.op, f"{row.position + 1}/{len(result['layers'])}",
          f"{100 * row.noise_share:.1f}%", round(row.sqnr_db, 1), round(row.added_db, 1),
          None if row.cosine is None else round(row.cosine, 4),
          None if row.range_error is None else round(row.range_error, 4)] for rank, row in enumerate(rows, start=1)],
        caption=f"ranked by the share of the file's quantization noise each layer adds; every layer in {out / 'precision.json'}, plot "
                f"{out / 'precision-by-layer.png'}"))
    if result["notes"]:
        ui.err.print(f"{len(result['notes'])} layers not compared (in precision.json's notes)", markup=False)
    return 0
