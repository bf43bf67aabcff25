"""The `edge-fer` command: parse arguments, call one function, print a table (rich) or JSON."""

from __future__ import annotations

import os

import argparse
import sys

from rich.markup import escape

from edge_fer import __version__, ui
from edge_fer.errors import UserError


def parse_option(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as TOML (numbers, booleans, lists, quoted strings) or as a bare string."""
    from edge_fer import tomllib_compat

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"option {text!r} must look like KEY=VALUE")
    try:
        return key.strip(), tomllib_compat.loads(f"v = {value}")["v"]
    except tomllib_compat.TOMLDecodeError:
        return key.strip(), value


def dataset_arguments(parser: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    if dataset_required:
        parser.add_argument("dataset", help="registered dataset adapter (see `edge-fer data list`)")
    parser.add_argument("--root", help="the dataset's folder (not needed for synthetic)")
    parser.add_argument("--label-mode", help="label mode; the adapter's first mode is the default")
    parser.add_argument("--image-size", type=int, help="resize every image to N×N when decoding")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE", help="adapter option")


def dataset_from_args(args):
    from edge_fer.data import load_dataset

    from edge_fer.config import check_limit

    if args.image_size is not None:
        check_limit("image_size", args.image_size, "--image-size")
    options = dict(parse_option(text) for text in args.option)
    return load_dataset(args.dataset, args.root, label_mode=args.label_mode, image_size=args.image_size, **options)


def cmd_data_list(args) -> int:
    from edge_fer.data import get_adapter, list_datasets

    rows = []
    for name in list_datasets():
        adapter = get_adapter(name)
        rows.append({"name": name, "classes": len(adapter.classes) or None, "label_modes": list(adapter.label_modes), "synthetic": adapter.synthetic})
    if args.json:
        ui.print_json(rows)
    else:
        ui.out.print(ui.table("datasets", ["name", "classes", "label modes", "synthetic"],
                              [[r["name"], r["classes"] or "from folders", ", ".join(r["label_modes"]), "yes" if r["synthetic"] else ""] for r in rows]))
    return 0


def cmd_data_inspect(args) -> int:
    dataset = dataset_from_args(args)
    summary = dataset.summary()
    if args.json:
        ui.print_json(summary)
        return 0
    height, width, channels = dataset.image_shape
    columns = ["split", "count", *dataset.classes]
    rows = [[name, info["count"], *info["class_counts"].values()] for name, info in summary["splits"].items()]
    caption = f"label mode {dataset.label_mode}; images {width}x{height}x{channels} uint8"
    if dataset.synthetic:
        caption += "; SYNTHETIC data, generated procedurally, not real faces"
    ui.out.print(ui.table(f"dataset {dataset.display_name}", columns, rows, caption=caption))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-fer", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-fer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = commands.add_parser("data", help="list and inspect datasets").add_subparsers(dest="data_command", metavar="ACTION")
    listing = data.add_parser("list", help="registered dataset adapters")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_data_list)
    inspect = data.add_parser("inspect", help="decode every image (filling the cache) and count splits and classes")
    dataset_arguments(inspect)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(run=cmd_data_inspect)

    add_model_commands(commands)
    add_train_commands(commands)
    add_export_commands(commands)
    add_bench_commands(commands)
    add_run_command(commands)
    add_predict_command(commands)
    add_target_commands(commands)
    return parser


def add_target_commands(commands) -> None:
    targets = commands.add_parser("targets", help="the device profiles (targets/*.toml), and a new one to edit") \
        .add_subparsers(dest="targets_command", metavar="ACTION")
    listing = targets.add_parser("list", help="every target: kind, how it is reached, its formats")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_targets_list)
    new = targets.add_parser("new", help="write NAME.toml from a target like it, to edit "
                                         "(e.g. edge-fer targets new my-orin --like jetson-orin-nano)")
    new.add_argument("name")
    new.add_argument("--like", required=True, help="the target to start from (edge-fer targets list)")
    new.add_argument("--out", help="the file to write (default: NAME.toml here)")
    new.set_defaults(run=cmd_targets_new)


def cmd_targets_list(args) -> int:
    from edge_fer.targets import list_targets, load_target

    rows = [load_target(name) for name in list_targets()]
    if args.json:
        ui.print_json([{"name": t.name, "kind": t.kind, "access": t.access, "ssh": t.ssh, "formats": t.formats,
                        "tensorrt": t.device.tensorrt, "description": t.description} for t in rows])
        return 0
    ui.out.print(ui.table("targets", ["name", "kind", "reached", "TensorRT", "description"],
                          [[t.name, t.kind, t.ssh or t.access, t.device.tensorrt, t.description] for t in rows]))
    return 0


def cmd_targets_new(args) -> int:
    from pathlib import Path

    from edge_fer.artifacts import atomic_write_bytes
    from edge_fer.targets import new_target_text

    out = Path(args.out or f"{args.name}.toml")
    if out.exists() or out.is_symlink():
        raise UserError(f"{out} exists; give another --out or name")
    atomic_write_bytes(out, new_target_text(args.name, args.like).encode())
    ui.out.print(f"wrote {out}: set ssh and check [device]; then edge-fer bench FILES --target {out}", soft_wrap=True,
                 highlight=False, markup=False)
    return 0


def cmd_model_list(args) -> int:
    from edge_fer.models import list_models, model_doc

    rows = [{"variant": name, "description": model_doc(name)} for name in list_models()]
    if args.json:
        ui.print_json(rows)
    else:
        ui.out.print(ui.table("models", ["variant", "description"], [[r["variant"], r["description"]] for r in rows]))
    return 0


def cmd_model_summary(args) -> int:
    from edge_fer.models import create_model
    from edge_fer.models.summary import model_summary

    from edge_fer.config import check_limit

    check_limit("num_classes", args.num_classes, "--num-classes")
    check_limit("image_size", args.image_size, "--image-size")
    model = create_model(args.variant, args.num_classes, args.image_size, weights="none", alpha=args.alpha)
    summary = model_summary(model)
    if args.json:
        ui.print_json(summary)
    else:
        ui.out.print(ui.table(f"model {args.variant}", ["field", "value"], [[k, v] for k, v in summary.items()]))
    return 0


def add_model_commands(commands) -> None:
    model = commands.add_parser("model", help="list and summarise model variants").add_subparsers(dest="model_command", metavar="ACTION")
    listing = model.add_parser("list", help="registered model variants")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_model_list)
    summary = model.add_parser("summary", help="parameters and MACs of a variant")
    summary.add_argument("variant")
    summary.add_argument("--image-size", type=int, default=224)
    summary.add_argument("--num-classes", type=int, default=8)
    summary.add_argument("--alpha", type=float, default=1.0, help="MobileNet width multiplier (0.25, 0.5, 0.75, 1.0, ...)")
    summary.add_argument("--json", action="store_true")
    summary.set_defaults(run=cmd_model_summary)


TRAIN_FLAGS = {  # flag -> dotted config key
    "dataset": "data.dataset", "root": "data.root", "label_mode": "data.label_mode",
    "variant": "model.variant", "image_size": "model.image_size", "weights": "model.weights",
    "schedule": "train.schedule", "batch_size": "train.batch_size", "seed": "train.seed",
    "steps_per_epoch": "train.steps_per_epoch", "out": "out",
}


def train_config_from_args(args):
    from edge_fer.config import apply_override, from_dict, load_toml
    from edge_fer.train.config import TrainConfig

    data = load_toml(args.config) if args.config else {}
    if "name" in data or "stages" in data:  # a pipeline file: take the sections that configure training
        data = {key: data[key] for key in ("data", "model", "train") if key in data}
    for flag, key in TRAIN_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            apply_override(data, f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    if args.distribute:
        apply_override(data, "train.distribute='mirrored'")
    apply_cluster_flags(args, data)
    for text in args.option:
        key, value = parse_option(text)
        data.setdefault("data", {}).setdefault("options", {})[key] = value
    for text in args.set:
        apply_override(data, text)
    return from_dict(TrainConfig, data)


def apply_cluster_flags(args, data: dict) -> None:
    """--workers and --task-index: TF_CONFIG for this process, and train.distribute = 'multi_worker'."""
    import json

    from edge_fer.config import apply_override
    from edge_fer.train.distribute import tf_config_for

    if args.workers is None and args.task_index is None:
        return
    if args.workers is None or args.task_index is None:
        raise UserError("--workers and --task-index go together: every worker gets the same --workers list and its own index")
    os.environ["TF_CONFIG"] = json.dumps(tf_config_for(args.workers, args.task_index))
    apply_override(data, "train.distribute='multi_worker'")


def cmd_train(args) -> int:
    from edge_fer.train.trainer import train

    record = train(train_config_from_args(args))
    if not record.get("chief", True):
        ui.out.print(f"worker {record['task_index']} of {record['workers']} finished; the chief (worker 0) wrote the model")
        return 0
    if args.json:
        ui.print_json(record)
    else:
        print_metrics(record["metrics"], title=f"{record['variant']} on {record['dataset']['name']}"
                      + (" (SYNTHETIC data)" if record["dataset"]["synthetic"] else ""))
        ui.out.print(f"saved {args.out or record['config']['out']}/model.keras and model.json"
                     f" (pretrained={record['pretrained']}, {record['train_seconds']} s)")
    return 0


def print_metrics(metrics: dict, title: str) -> None:
    rows = []
    for split, values in metrics.items():
        worst = min((v for v in values["per_class_accuracy"].values() if v is not None), default=None)
        rows.append([split, values["count"], values["accuracy"], values["macro_f1"], worst])
    ui.out.print(ui.table(title, ["split", "images", "accuracy", "macro-F1", "worst class acc"], rows))


def cmd_evaluate(args) -> int:
    from edge_fer.evaluate import classification_metrics, predict_keras
    from edge_fer.models.loading import load_model

    model, meta = load_model(args.model)
    dataset = dataset_from_args(args)
    if args.split not in dataset.splits:
        raise UserError(f"dataset {dataset.name} has no split {args.split!r}; it has {', '.join(dataset.splits)}")
    classes = meta.get("classes")
    if classes and list(classes) != list(dataset.classes):
        raise UserError(f"the model was trained on classes {classes}, the dataset has {list(dataset.classes)}")
    split = dataset.splits[args.split]
    image_size = int(model.input_shape[1])
    metrics = classification_metrics(split.labels, predict_keras(model, split.images, image_size), dataset.classes)
    result = {"model": str(args.model), "dataset": dataset.name, "synthetic": dataset.synthetic,
              "label_mode": dataset.label_mode, "split": args.split, **metrics}
    if args.json:
        ui.print_json(result)
        return 0
    print_metrics({args.split: metrics}, title=f"{args.model} on {dataset.display_name}")
    per_class = [[name, acc] for name, acc in metrics["per_class_accuracy"].items()]
    ui.out.print(ui.table("per-class accuracy", ["class", "accuracy"], per_class))
    ui.out.print(ui.table("confusion (rows: true, columns: predicted)", ["true", *dataset.classes],
                          [[name, *row] for name, row in zip(dataset.classes, metrics["confusion"])]))
    return 0


def add_train_commands(commands) -> None:
    train = commands.add_parser("train", help="train a model (two-stage paper recipe or from scratch)")
    train.add_argument("--dataset")
    train.add_argument("--root")
    train.add_argument("--label-mode")
    train.add_argument("--config", help="TOML file with [data], [model], [train] sections")
    train.add_argument("--variant")
    train.add_argument("--image-size", type=int)
    train.add_argument("--weights", help="imagenet, none, or a MobileNet weights file")
    train.add_argument("--schedule", choices=["two_stage", "from_scratch"])
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--steps-per-epoch", type=int)
    train.add_argument("--out", help="output folder (default runs/train)")
    train.add_argument("--distribute", action="store_true", help="MirroredStrategy over every visible GPU")
    train.add_argument("--workers", metavar="HOST:PORT,...",
                       help="multi-worker training: every worker's address, the chief (task 0) first; writes TF_CONFIG")
    train.add_argument("--task-index", type=int, metavar="N", help="this worker's place in --workers (0 = the chief)")
    train.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE", help="dataset adapter option")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="any config value, e.g. train.head.epochs=5")
    train.add_argument("--json", action="store_true")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="accuracy, macro-F1, per-class accuracy and confusion of a model")
    evaluate.add_argument("model", help="model.keras or its folder")
    evaluate.add_argument("--dataset", required=True)
    dataset_arguments(evaluate, dataset_required=False)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=cmd_evaluate)


def _user_caused() -> tuple:
    import json
    import sqlite3

    return (OSError, sqlite3.Error, json.JSONDecodeError, UnicodeDecodeError)


USER_CAUSED = _user_caused()


def describe(error: BaseException) -> str:
    """One line for an error the user's files or folders caused, naming the file where Python knows it."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or type(error).__name__}"
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not UTF-8 text (byte {error.start}: {error.reason})"
    if isinstance(error, ValueError) and type(error).__name__ == "JSONDecodeError":
        return f"a JSON file is not valid JSON ({error.msg} at line {error.lineno})"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        ui.err.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt:
        ui.err.print("interrupted")
        return 130
    except USER_CAUSED as error:  # the file system, a results store, a JSON or text file the user gave
        if os.environ.get("EDGE_FER_DEBUG"):
            raise
        ui.err.print(f"[red]error:[/] {escape(describe(error))} (EDGE_FER_DEBUG=1 shows the traceback)", soft_wrap=True)
        return 2



def data_overrides(args) -> dict:
    """Dataset flags given on the command line, as a [data] table (empty where none was given)."""
    data = {}
    for flag, key in (("dataset", "dataset"), ("root", "root"), ("label_mode", "label_mode")):
        if getattr(args, flag, None) is not None:
            data[key] = getattr(args, flag)
    options = dict(parse_option(text) for text in getattr(args, "option", []))
    if options:
        data["options"] = options
    return data


def cmd_qat(args) -> int:
    import json
    from pathlib import Path

    from edge_fer.config import apply_override, from_dict, load_toml
    from edge_fer.quantize.config import QatConfig
    from edge_fer.quantize.qat import run_qat

    data = load_toml(args.config) if args.config else {}
    data["model"] = str(args.model)
    model_json = (Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent) / "model.json"
    trained_on = json.loads(model_json.read_text()).get("dataset", {}) if model_json.is_file() else {}
    defaults = {k: v for k, v in {"dataset": trained_on.get("name"), "root": trained_on.get("root"),
                                  "label_mode": trained_on.get("label_mode"), "options": trained_on.get("options")}.items() if v}
    data["data"] = {**defaults, **data.get("data", {}), **data_overrides(args)}
    if args.out:
        data["out"] = args.out
    for text in args.set:
        apply_override(data, text)
    record = run_qat(from_dict(QatConfig, data))
    if args.json:
        ui.print_json(record)
    else:
        print_metrics(record["metrics"], title=f"QAT model ({record['variant']})")
        ui.out.print(f"saved the QAT model in {data.get('out', 'runs/qat')} ({record['qat_seconds']} s)")
    return 0


def cmd_export(args) -> int:
    from edge_fer.export.exporter import ExportSettings, export

    settings = ExportSettings(formats=args.formats, calibration_images=args.calibration_images,
                              parity_images=args.parity_images, threads=args.threads, target=args.target)
    results = export(args.model, args.out, settings, qat_dir=args.qat, dataset_override=dataset_spec_from_args(args))
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
    return 1 if any(r["status"] in ("failed", "failed-check") for r in results) else 0


def add_export_commands(commands) -> None:
    from edge_fer.formats import export_formats

    qat = commands.add_parser("qat", help="quantization-aware fine-tuning of a trained model (tfmot)")
    qat.add_argument("model", help="the trained float model (folder or model.keras)")
    qat.add_argument("--dataset")
    qat.add_argument("--root")
    qat.add_argument("--label-mode")
    qat.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")
    qat.add_argument("--config", help="TOML with QAT settings (epochs, learning_rate, batch_size, ...)")
    qat.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. epochs=2")
    qat.add_argument("--out", help="output folder (default runs/qat)")
    qat.add_argument("--json", action="store_true")
    qat.set_defaults(run=cmd_qat)

    names = ", ".join(f.name for f in export_formats())
    export = commands.add_parser("export", help="export TFLite, ONNX and TensorRT artifacts, each checked for parity")
    export.add_argument("model", help="the trained float model (folder or model.keras)")
    export.add_argument("--formats", default="cpu", help=f"'cpu' (default), 'all', or a list of: {names}")
    export.add_argument("--out", required=True)
    export.add_argument("--qat", help="the QAT model folder, for tflite-int8-qat, onnx-int8-qdq and tensorrt-int8")
    export.add_argument("--calibration-images", type=int, default=300)
    export.add_argument("--parity-images", type=int, default=500)
    export.add_argument("--threads", type=int)
    export.add_argument("--target", help="target profile for TensorRT builds (see targets/)")
    export.add_argument("--dataset", help="calibration and parity data (default: the model's own dataset)")
    export.add_argument("--root")
    export.add_argument("--label-mode")
    export.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")
    export.add_argument("--json", action="store_true")
    export.set_defaults(run=cmd_export)


def dataset_spec_from_args(args) -> dict | None:
    override = data_overrides(args)
    if not override:
        return None
    if not override.get("dataset"):
        raise UserError("--root, --label-mode and --option need --dataset")
    return {"name": override["dataset"], "root": override.get("root"), "label_mode": override.get("label_mode"),
            "options": override.get("options", {})}


def cmd_bench(args) -> int:
    import tempfile
    from pathlib import Path

    from edge_fer.bench.runner import BenchSettings, bench, bench_fleet
    from edge_fer.config import from_dict

    settings = from_dict(BenchSettings, {"min_queries": args.min_queries, "min_duration_s": args.min_duration,
                                         "warmup_queries": args.warmup, "offline_batch": args.offline_batch,
                                         "rounds": args.rounds, "threads": args.threads, "store": args.store}, "--")
    if not args.artifacts and not args.peak:
        raise UserError("give the artifacts to benchmark, or --peak for the host's MAC rate")
    targets = args.target or ["host-cpu"]
    run = (lambda files, spec: bench(files, targets[0], settings, spec)) if len(targets) == 1 else \
        (lambda files, spec: bench_fleet(files, targets, settings, spec))
    rows = run(args.artifacts, dataset_spec_from_args(args)) if args.artifacts else []
    if args.peak:
        from edge_fer.bench.peak import write_peak_artifacts

        ui.log("building the peak models (1×1 convolutions) in every CPU format")
        with tempfile.TemporaryDirectory() as folder:
            rows += run(write_peak_artifacts(Path(folder)), None)  # random inputs, unscored
    if args.json:
        ui.print_json(rows)
    else:
        from edge_fer.bench.peak import peak_rates
        from edge_fer.report import COLUMNS, table_rows, visible

        for target in dict.fromkeys(row["target"] for row in rows):
            mine = [row for row in rows if row["target"] == target]
            ui.out.print(ui.table(f"benchmark on {target} (batch 1 latency; images/s batched)",
                                  *visible(COLUMNS, table_rows(mine, target, peak_rates(rows)))))
        for (target, name), rate in peak_rates(rows).items():
            ui.out.print(f"peak {name} on {target}: {rate / 1e9:.1f} GMAC/s")
        ui.out.print(f"{len(rows)} rows added to {args.store}")
    return 1 if any(row["status"] != "passed" for row in rows) else 0


def cmd_bundle(args) -> int:
    from pathlib import Path

    from edge_fer.bench.remote import build_bundle
    from edge_fer.artifacts import atomic_write_bytes
    from edge_fer.targets import load_target

    target = load_target(args.target)
    artifacts = [Path(a) for a in args.artifacts]
    missing = [str(a) for a in artifacts if not a.is_file()]
    if missing:
        raise UserError(f"artifact does not exist: {', '.join(missing)}")
    out = Path(args.out or f"edge_fer-bundle-{target.name}.tar.gz")
    atomic_write_bytes(out, build_bundle(artifacts))
    ui.out.print(f"wrote {out}: copy it to {target.ssh or target.name}, `tar -xzf {out.name}` and run ./run.sh")
    return 0


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


def cmd_check_tensorrt(args) -> int:
    """The TensorRT rules on one ONNX file: one line per broken rule on stderr and exit 2, or a one-line pass."""
    from edge_fer.export.tensorrt_rules import check_tensorrt_file
    from edge_fer.export.tensorrt_support import get_support

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


def cmd_engine(args) -> int:
    """A TensorRT engine from an exported ONNX file (or a folder of them), or with --dry-run what would be done."""
    from pathlib import Path

    from edge_fer.export.exporter import engine_from_onnx, engine_plan

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
        ui.out.print("trtexec: " + " ".join(plan["trtexec_command"]), soft_wrap=True, highlight=False)
        ui.out.print("python API: " + ", ".join(f"{key}={value}" for key, value in plan["python_api"].items()),
                     soft_wrap=True, highlight=False)
        return 0 if plan["rule_check"]["passed"] else 2
    reference, images = None, None
    if args.reference:
        if not args.dataset:
            raise UserError("--reference needs --dataset (and --root): parity is measured on its test images")
        images = _engine_parity_images(args, plan["config"].image_size)
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


def _engine_parity_images(args, image_size: int):
    from edge_fer.data import load_dataset
    from edge_fer.data.preprocess import to_model_input

    dataset = load_dataset(args.dataset, args.root, label_mode=args.label_mode)
    split = dataset.splits.get("test") or dataset.splits.get("valid")
    if split is None:
        raise UserError(f"dataset {args.dataset} has no test or valid split for parity")
    return to_model_input(split.images[:args.parity_images], image_size)


def cmd_report(args) -> int:
    from edge_fer.bench import store
    from edge_fer.report import COLUMNS, build_report, dataset_note, visible

    args.store = str(store.newest(args.store))
    store.require(args.store)
    report = build_report(args.store, args.out)
    if args.json:
        ui.print_json(report)
        return 0
    for section in report["sections"]:
        ui.out.print(ui.table(f"{section['target']}", *visible(COLUMNS, section["rows"]), caption=dataset_note(section)))
    ui.out.print(f"report: {args.out}/report.md and {args.out}/report.html ({len(report['history'])} runs in {args.store})")
    return 0


def cmd_pick(args) -> int:
    from edge_fer.bench.pick import candidates, pick
    from edge_fer.formats import get_format

    if not (args.max_p50_ms > 0 and args.max_p50_ms < float("inf")):
        raise UserError(f"--max-p50-ms must be a positive number of milliseconds, got {args.max_p50_ms}")
    from edge_fer.bench import store

    formats = [get_format(name.strip()).name for name in args.format.split(",")] if args.format else None
    args.store = str(store.newest(args.store))
    rows = candidates(args.store, args.target, formats, args.dataset)
    chosen = pick(rows, args.max_p50_ms)
    fastest = min(rows, key=lambda row: row["p50_ms"], default=None)
    if args.json:
        ui.print_json({"target": args.target, "max_p50_ms": args.max_p50_ms, "candidates": len(rows),
                       "pick": None if chosen is None else {k: chosen.get(k) for k in PICK_FIELDS}})
        return 0 if chosen else 2
    if chosen is None:
        nearest = f"; the fastest is {fastest['format']} at {fastest['p50_ms']:.3f} ms" if fastest else ""
        ui.err.print(f"nothing fits: no scored artifact on {args.target} has p50 <= {args.max_p50_ms} ms"
                     f" ({len(rows)} candidates){nearest}", soft_wrap=True, markup=False)
        return 2
    ui.out.print(ui.table(f"pick on {args.target}, p50 <= {args.max_p50_ms} ms ({len(rows)} candidates)",
                          ["field", "value"], [[k, chosen.get(k)] for k in PICK_FIELDS]))
    return 0


PICK_FIELDS = ("artifact", "format", "accuracy", "macro_f1", "p50_ms", "p90_ms", "size_bytes", "dataset", "image_size",
               "variant", "created")


def add_bench_commands(commands) -> None:
    from edge_fer.bench.store import DEFAULT_STORE

    chooser = commands.add_parser("pick", help="the most accurate benchmarked artifact within a latency budget")
    chooser.add_argument("--store", help="results store (default: the newest of benchmarks/results.sqlite and runs/*/results.sqlite)")
    chooser.add_argument("--target", required=True)
    chooser.add_argument("--max-p50-ms", type=float, required=True, help="latency budget: p50 at batch 1, in ms")
    chooser.add_argument("--format", help="comma-separated formats to choose from (default: all)")
    chooser.add_argument("--dataset", help="compare rows scored on this dataset only (needed when the store mixes datasets)")
    chooser.add_argument("--json", action="store_true")
    chooser.set_defaults(run=cmd_pick)
    bench = commands.add_parser("bench", help="latency (MLPerf SingleStream/Offline), size, memory and accuracy per artifact")
    bench.add_argument("artifacts", nargs="*")
    bench.add_argument("--peak", action="store_true", help="also measure the host's peak MAC rate per runtime and precision")
    bench.add_argument("--target", action="append", help="target profile (targets/NAME.toml or a path); repeat it to "
                       "benchmark several targets at once, one thread each (default: host-cpu)")
    bench.add_argument("--dataset", help="score every artifact on this dataset's test split")
    bench.add_argument("--root")
    bench.add_argument("--label-mode")
    bench.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--min-queries", type=int, default=200)
    bench.add_argument("--min-duration", type=float, default=5.0, help="seconds of SingleStream at least")
    bench.add_argument("--warmup", type=int, default=20)
    bench.add_argument("--offline-batch", type=int, default=32)
    bench.add_argument("--rounds", type=int, default=1, help="split SingleStream into this many rounds, interleaved "
                       "across the artifacts, so a host whose speed drifts treats them alike")
    bench.add_argument("--threads", type=int)
    bench.add_argument("--store", default=str(DEFAULT_STORE))
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(run=cmd_bench)

    bundle = commands.add_parser("bundle", help="a tarball with the device-side runner and artifacts, to copy by hand")
    bundle.add_argument("artifacts", nargs="+")
    bundle.add_argument("--target", required=True)
    bundle.add_argument("--out")
    bundle.set_defaults(run=cmd_bundle)

    trtexec = commands.add_parser("trtexec", help="trtexec helpers").add_subparsers(dest="trtexec_command", metavar="ACTION")
    parse = trtexec.add_parser("parse", help="throughput and latency statistics from a trtexec log")
    parse.add_argument("log")
    parse.add_argument("--json", action="store_true")
    parse.set_defaults(run=cmd_trtexec_parse)

    check = commands.add_parser("check", help="rule checks on artifacts").add_subparsers(dest="check_command", metavar="WHAT")
    tensorrt = check.add_parser("tensorrt", help="does TensorRT's ONNX parser and builder accept this file (no GPU needed)")
    tensorrt.add_argument("model", help="an ONNX file")
    tensorrt.add_argument("--tensorrt", help="TensorRT version: 8.2, 8.5, 8.6, 10.x, 11.x (default: the target's, else 10.x)")
    tensorrt.add_argument("--target", help="check for this target's TensorRT version and DLA settings")
    tensorrt.add_argument("--dla", action="store_true", help="the engine will run on DLA")
    tensorrt.add_argument("--no-gpu-fallback", action="store_true", help="with --dla: layers DLA cannot run are errors")
    tensorrt.add_argument("--json", action="store_true")
    tensorrt.set_defaults(run=cmd_check_tensorrt)

    engine = commands.add_parser("engine", help="build a TensorRT engine from an exported ONNX file (or show how: --dry-run)")
    engine.add_argument("source", help="an ONNX file, or an export folder (the ONNX the precision needs is picked)")
    engine.add_argument("--precision", choices=["fp32", "fp16", "int8"], required=True)
    engine.add_argument("--out", default="model.engine")
    engine.add_argument("--target", help="build with this target's TensorRT settings")
    engine.add_argument("--builder", choices=["python-api", "trtexec"], help="default: the target's, else what is here")
    engine.add_argument("--tensorrt", help="the TensorRT version to plan for (default: the one found)")
    engine.add_argument("--reference", help="an artifact (onnx-fp32) to measure top-1 agreement against")
    engine.add_argument("--dataset")
    engine.add_argument("--root")
    engine.add_argument("--label-mode")
    engine.add_argument("--parity-images", type=int, default=10000)
    engine.add_argument("--dry-run", action="store_true", help="print the rule check, trtexec command and Python API settings")
    engine.add_argument("--json", action="store_true")
    engine.set_defaults(run=cmd_engine)

    report = commands.add_parser("report", help="Markdown and HTML report (tables, plots) from the results store")
    report.add_argument("--store", help="results store (default: the newest of benchmarks/results.sqlite and runs/*/results.sqlite)")
    report.add_argument("--out", default="benchmarks/report")
    report.add_argument("--json", action="store_true")
    report.set_defaults(run=cmd_report)


def cmd_run(args) -> int:
    import shlex
    from pathlib import Path

    from edge_fer.config import apply_override, from_dict, load_toml
    from edge_fer.pipeline import Pipeline
    from edge_fer.pipeline_config import DEFAULT_PIPELINE, PipelineConfig, validate

    path = Path(args.pipeline) if args.pipeline else DEFAULT_PIPELINE
    data = load_toml(path)
    data.setdefault("name", path.stem)
    for text in args.set:
        apply_override(data, text)
    apply_cluster_flags(args, data)
    try:
        config = from_dict(PipelineConfig, data)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    validate(config, Path.cwd())
    command = "edge-fer run" + (f" {shlex.quote(str(args.pipeline))}" if args.pipeline else "")
    if config.sweep.grid or config.sweep.points:
        return finish_sweep(config, data, [command], args)
    if not joins_as_chief(config, args):
        return 0
    summary = Pipeline(config, commands=[command]).run(start=args.start, only=args.only)
    if args.json:
        ui.print_json(summary)
    else:
        from edge_fer.pipeline_summary import WIDTH, artifact_rows, busy_footnote, stage_rows

        console = ui.narrow(ui.out, WIDTH)
        console.print(ui.table(f"pipeline {config.name}", ["stage", "status", "seconds", "summary"], stage_rows(summary)))
        artifacts = artifact_rows(config.folder)
        if artifacts:
            console.print(ui.table("artifacts", ["artifact", "export", "accuracy", "p50 ms", "size MB"], artifacts,
                                   caption=busy_footnote(artifacts)))
    failed = any(s["status"] in ("ran with failures", "skipped with failures") for s in summary)
    return 1 if failed else 0


def joins_as_chief(config, args) -> bool:
    """Multi-worker training: the chief joins the cluster before any other TensorFlow work, then runs the
    pipeline; another worker takes part in the train stage only, then stops here (False)."""
    from edge_fer.pipeline_stages import chief_train_is_current, train_as_worker
    from edge_fer.train.distribute import create_placement, distribute_mode, is_chief_task, read_tf_config

    if distribute_mode(config.train.distribute) != "multi_worker":
        return True
    if args.only or args.start:
        raise UserError("--from and --only run on one machine: drop --workers (the train stage is what workers share)")
    tf_config = read_tf_config()
    task = tf_config["task"]
    if is_chief_task(tf_config):
        create_placement("multi_worker", config.train.peer_timeout_s)
        return True
    if chief_train_is_current(config):
        ui.out.print(f"worker {task['index']}: the chief's train stage is up to date; nothing to train")
        return False
    placement = create_placement("multi_worker", config.train.peer_timeout_s)
    train_as_worker(config)
    ui.out.print(f"worker {placement.task_index} of {placement.workers} finished training; the chief "
                 "wrote the model and runs the other stages")
    return False


def finish_sweep(config, data: dict, commands: list[str], args) -> int:
    from edge_fer.pipeline_summary import WIDTH
    from edge_fer.sweep import POINT_COLUMNS, plan_sweep, point_rows, run_sweep

    outcome = run_sweep(config, data, commands, start=args.start, only=args.only)
    if args.json:
        ui.print_json(outcome)
    else:
        console = ui.narrow(ui.out, WIDTH)
        console.print(ui.table(f"sweep {config.name}", POINT_COLUMNS, point_rows(plan_sweep(config, data))))
        if "report" in outcome:
            console.print(f"report: {outcome['report']['markdown']}")
    failed = any(s["status"] in ("ran with failures", "skipped with failures") for p in outcome["points"] for s in p["stages"])
    return 1 if failed else 0


def add_run_command(commands) -> None:
    from edge_fer.pipeline_config import STAGES

    run = commands.add_parser("run", help="run a pipeline file's stages (default: pipelines/quickstart.toml)")
    run.add_argument("pipeline", nargs="?", help="pipeline TOML (default: the built-in quickstart)")
    run.add_argument("--from", dest="start", choices=STAGES, help="rerun from this stage on, whatever the manifests say")
    run.add_argument("--only", choices=STAGES, help="run this stage alone, whatever its manifest says (its inputs must exist)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a pipeline value")
    run.add_argument("--workers", metavar="HOST:PORT,...",
                     help="train on several machines: the same command on each, every worker's address, chief first")
    run.add_argument("--task-index", type=int, metavar="N",
                     help="this machine's place in --workers; 0 (the chief) runs every stage, the others only train")
    run.add_argument("--json", action="store_true")
    run.set_defaults(run=cmd_run)


def cmd_predict(args) -> int:
    from edge_fer.predict import PredictSettings, predict

    if not 0 <= args.margin <= 1:
        raise UserError(f"--margin must be from 0 to 1 (a fraction of the face box), got {args.margin}")
    results = predict(args.input, args.artifact, args.out, PredictSettings(margin=args.margin, threads=args.threads,
                                                                                  detect=not args.no_detect))
    if args.json:
        ui.print_json(results)
        return 0
    rows = []
    for result in results:
        if "frames" in result:
            rows.append([result["input"], f"{result['frames']} frames", result["faces"], "", result.get("annotated", "")])
            continue
        for face in result["faces"] or [None]:
            rows.append([result["input"], "image", 0 if face is None else 1, "" if face is None else
                         f"{face['label']} {face['score']:.2f} at {face['box']} ({face['latency_ms']:.1f} ms)", result.get("annotated", "")])
    ui.out.print(ui.table(f"predict with {args.artifact}", ["input", "kind", "faces", "prediction", "annotated"], rows))
    return 0


def add_predict_command(commands) -> None:
    predict = commands.add_parser("predict", help="find faces in an image, a folder or a video and classify each")
    predict.add_argument("input", help="an image, a folder of images, or a video file")
    predict.add_argument("--artifact", required=True, help="any exported artifact (.tflite, .onnx, .engine) or model folder")
    predict.add_argument("--out", help="folder for annotated images/videos and JSON")
    predict.add_argument("--margin", type=float, default=0.15)
    predict.add_argument("--threads", type=int)
    predict.add_argument("--no-detect", action="store_true", help="each input is already a face crop: classify the whole image")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(run=cmd_predict)


def entry() -> None:
    """The `edge-fer` command: native library output goes to a log file, then main()."""
    from edge_fer import quiet

    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a character gets '?', not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    if not os.environ.get("EDGE_FER_DEBUG"):
        try:
            quiet.native_output_to(os.environ.get("EDGE_FER_LOG") or quiet.default_log())
        except OSError:
            pass  # no writable log folder: the messages stay on the terminal
    sys.exit(main())


if __name__ == "__main__":
    entry()
