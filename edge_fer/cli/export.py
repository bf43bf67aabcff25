"""`edge-fer export`, `edge-fer engine`, `edge-fer check tensorrt` and `edge-fer trtexec parse`."""

from __future__ import annotations

from rich.markup import escape

from edge_fer import ui
from edge_fer.cli.common import add_dataset_flags, add_json_flag, dataset_spec
from edge_fer.errors import UserError
from edge_fer.status import FAILURES


def register(commands) -> None:
    from edge_fer.formats import export_formats

    names = ", ".join(f.name for f in export_formats())
    export = commands.add_parser("export", help="export TFLite, ONNX and TensorRT artifacts, each checked for parity")
    export.add_argument("model", help="the trained float model (folder or model.keras)")
    export.add_argument("--formats", default="cpu", help=f"'cpu' (default) or 'all', either followed by '-name' items to leave out, or a list of: {names}")
    export.add_argument("--out", required=True, help="the folder for the artifacts and export.json")
    export.add_argument("--qat", help="the QAT model folder, for tflite-int8-qat, onnx-int8-qdq and tensorrt-int8")
    export.add_argument("--calibration-images", type=int, default=300, help="images that set int8 ranges (default 300)")
    export.add_argument("--parity-images", type=int, default=500, help="images each artifact is checked on (default 500)")
    export.add_argument("--threads", type=int, help="CPU threads of the parity runs")
    export.add_argument("--target", help="target profile for TensorRT builds (edge-fer targets list)")
    export.add_argument("--keep-float", default="", metavar="LAYER,...|auto:N",
                        help="tflite-mixed, onnx-mixed-qdq, tensorrt-mixed: Keras layers left in float, or auto:N for the N "
                             "that `edge-fer debug precision` ranks first on the validation split")
    add_dataset_flags(export, what="calibration and parity data (default: the model's own dataset)")
    add_json_flag(export)
    export.set_defaults(run=cmd_export)

    engine = commands.add_parser("engine", help="build a TensorRT engine from an exported ONNX file (or show how: --dry-run)")
    engine.add_argument("source", help="an ONNX file, or an export folder (the ONNX the precision needs is picked)")
    engine.add_argument("--precision", choices=["fp32", "fp16", "int8"], required=True,
                        help="the engine's precision (int8 builds from the QDQ file)")
    engine.add_argument("--out", default="model.engine", help="the engine file (default model.engine)")
    engine.add_argument("--target", help="build with this target's TensorRT settings")
    engine.add_argument("--builder", choices=["python-api", "trtexec"], help="default: the target's, else what is here")
    engine.add_argument("--tensorrt", help="the TensorRT version to plan for (default: the one found)")
    engine.add_argument("--reference", help="an artifact (onnx-fp32) to measure top-1 agreement against")
    add_dataset_flags(engine, what="parity images for --reference (its test split)")
    engine.add_argument("--parity-images", type=int, default=10000, help="at most this many test images (default 10000)")
    engine.add_argument("--dry-run", action="store_true", help="print the rule check, trtexec command and Python API settings")
    add_json_flag(engine)
    engine.set_defaults(run=cmd_engine)

    check = commands.add_parser("check", help="rule checks on artifacts").add_subparsers(dest="check_command", metavar="WHAT")
    tensorrt = check.add_parser("tensorrt", help="does TensorRT's ONNX parser and builder accept this file (no GPU needed)")
    tensorrt.add_argument("model", help="an ONNX file")
    tensorrt.add_argument("--tensorrt", help="TensorRT version: 8.2, 8.5, 8.6, 10.x, 11.x (default: the target's, else 10.x)")
    tensorrt.add_argument("--target", help="check for this target's TensorRT version and DLA settings")
    tensorrt.add_argument("--dla", action="store_true", help="the engine will run on DLA")
    tensorrt.add_argument("--no-gpu-fallback", action="store_true", help="with --dla: layers DLA cannot run are errors")
    add_json_flag(tensorrt)
    tensorrt.set_defaults(run=cmd_check_tensorrt)

    trtexec = commands.add_parser("trtexec", help="trtexec helpers").add_subparsers(dest="trtexec_command", metavar="ACTION")
    parse = trtexec.add_parser("parse", help="throughput and latency statistics from a trtexec log")
    parse.add_argument("log", help="a trtexec log file")
    add_json_flag(parse)
    parse.set_defaults(run=cmd_trtexec_parse)


def cmd_export(args) -> int:
    from edge_fer.debug.auto import resolve_keep_float
    from edge_fer.export.exporter import ExportSettings, export

    settings = ExportSettings(formats=args.formats, calibration_images=args.calibration_images,
                              parity_images=args.parity_images, threads=args.threads, target=args.target,
                              keep_float=args.keep_float)
    results = export(args.model, args.out, settings, qat_dir=args.qat, dataset_override=dataset_spec(args),
                     choose_keep_float=resolve_keep_float)
    if args.json:
        ui.print_json(results)
    else:
        rows = [[r["format"], r["status"], r["size_bytes"] / 1e6 if r.get("size_bytes") else None,
                 r.get("top1_agreement"), r.get("max_abs_diff"), r.get("floor"), r.get("reference"),
                 r.get("agreement_with_float")] for r in results]
        ui.out.print(ui.table(f"export of {args.model} to {args.out}",
                              ["format", "status", "size MB", "top-1 agreement", "max |Δp|", "floor", "against",
                               "agreement with float"], rows))
        by_reason: dict[str, list[str]] = {}
        for result in results:
            if result.get("reason"):
                by_reason.setdefault(result["reason"], []).append(result["format"])
        for reason, names in by_reason.items():
            ui.out.print(f"{', '.join(names)}: {reason}", markup=False, soft_wrap=True)
    return 1 if any(r["status"] in FAILURES for r in results) else 0


def cmd_engine(args) -> int:
    """A TensorRT engine from an exported ONNX file (or a folder of them), or with --dry-run what would be done."""
    from pathlib import Path

    from edge_fer.export.engines import engine_from_onnx, engine_plan

    plan = engine_plan(Path(args.source), args.precision, args.target, args.builder, args.tensorrt)
    settings = {key: value for key, value in plan.items() if key not in ("config", "meta", "plan", "files")}
    if args.dry_run:
        if args.json:
            ui.print_json(settings)
            return 0
        gpu = plan["gpu"]
        ui.out.print(f"GPU: {gpu['gpu'] + ' (compute ' + gpu['compute_capability'] + ')' if gpu else 'none found'}; "
                     f"TensorRT {plan['tensorrt']}; builder: {plan['builder'] or 'none here (nothing would be built)'}",
                     soft_wrap=True, highlight=False)
        ui.out.print(f"source: {plan['onnx']}  rule check: {'passed' if plan['rule_check']['passed'] else 'FAILED'}",
                     soft_wrap=True, highlight=False)
        implicit = plan["implicit_quantization"]
        if implicit:
            ui.out.print(f"DLA int8 by implicit quantization (DLA runs no Q/DQ graph): {implicit['onnx']} (the Q/DQ-free "
                         f"model of {implicit['from']}) and the calibration cache {implicit['calibration_cache']} "
                         f"({implicit['scales']} scales from the QDQ file)", soft_wrap=True, highlight=False)
        if plan["layer_constraints"] != "none":
            ui.out.print(f"mixed precision: {plan['layer_constraints']}", soft_wrap=True, highlight=False)
        ui.out.print("trtexec: " + " ".join(plan["trtexec_command"]), soft_wrap=True, highlight=False)
        ui.out.print("python API: " + ", ".join(f"{key}={value}" for key, value in plan["python_api"].items()),
                     soft_wrap=True, highlight=False)
        return 0 if plan["rule_check"]["passed"] else 2
    reference, images = None, None
    if args.reference:
        if not args.dataset:
            raise UserError("--reference needs --dataset (and --root): parity is measured on its test images")
        images = parity_images(args, plan["config"].image_size)
        reference = Path(args.reference)
    record = engine_from_onnx(plan, Path(args.out), reference, images)
    if args.json:
        ui.print_json(record)
    else:
        parity = record.get("parity")
        line = f"wrote {args.out} ({record['size_bytes'] / 1e6:.2f} MB, TensorRT {record['engine']['tensorrt']}, {record['engine']['builder']})"
        if parity:
            line += f"; top-1 agreement with {Path(parity['reference']).name} {parity['top1_agreement']:.4f} (floor {parity['floor']})"
        ui.out.print(line, soft_wrap=True, highlight=False)
    parity = record.get("parity")
    return 2 if parity and parity["top1_agreement"] < parity["floor"] else 0


def cmd_check_tensorrt(args) -> int:
    """The TensorRT rules on one ONNX file: one line per broken rule on stderr and exit 2, or a one-line pass."""
    from edge_fer.export.tensorrt_rules import check_tensorrt_file
    from edge_fer.targets.tensorrt_support import get_support

    target = None
    if args.target:
        from edge_fer.targets import load_target

        target = load_target(args.target)
    version = args.tensorrt or (target.device.tensorrt if target else None)
    support = get_support(version)
    dla = args.dla or bool(target and target.tensorrt.dla_core is not None)
    gpu_fallback = target.tensorrt.gpu_fallback if target else not args.no_gpu_fallback
    report = check_tensorrt_file(args.model, support, dla=dla, gpu_fallback=gpu_fallback)
    if args.json:
        ui.print_json({"model": args.model, **report.as_dict()})
    else:
        for problem in report.problems:
            ui.err.print(f"{args.model}: {escape(problem)}", soft_wrap=True, highlight=False)
        for note in report.notes:
            ui.out.print(f"note: {escape(note)}", soft_wrap=True, highlight=False)
        if report.passed:
            ui.out.print(f"{args.model}: passes the TensorRT {report.tensorrt} rules", soft_wrap=True, highlight=False)
    return 0 if report.passed else 2


def cmd_trtexec_parse(args) -> int:
    from edge_fer.bench.trtexec import STAT_KEYS, parse_trtexec_file

    parsed = parse_trtexec_file(args.log)
    if args.json:
        ui.print_json(parsed)
        return 0
    blocks = [("latency", "latency_ms"), ("end to end", "end_to_end_ms"), ("GPU compute", "gpu_compute_ms"),
              ("enqueue", "enqueue_ms"), ("H2D", "h2d_ms"), ("D2H", "d2h_ms")]
    rows = [[label, *(parsed[key][stat] for stat in STAT_KEYS)] for label, key in blocks
            if any(v is not None for v in parsed[key].values())]
    ui.out.print(ui.table(f"trtexec {args.log}: throughput {parsed['throughput_qps']} qps", ["block (ms)", *STAT_KEYS], rows))
    return 0


def parity_images(args, image_size: int):
    from edge_fer.data.preprocess import to_model_input

    dataset = dataset_spec(args).load()
    split = dataset.splits.get("test") or dataset.splits.get("valid")
    if split is None:
        raise UserError(f"dataset {dataset.name} has no test or valid split for parity")
    return to_model_input(split.images[:args.parity_images], image_size)
