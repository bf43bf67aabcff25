"""The `edge-fer` command: parse arguments, call one function, print a table (rich) or JSON."""

from __future__ import annotations

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
    return parser


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

    model = create_model(args.variant, args.num_classes, args.image_size, weights="none")
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
    for flag, key in TRAIN_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            apply_override(data, f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    if args.distribute:
        apply_override(data, "train.distribute=true")
    for text in args.option:
        key, value = parse_option(text)
        data.setdefault("data", {}).setdefault("options", {})[key] = value
    for text in args.set:
        apply_override(data, text)
    return from_dict(TrainConfig, data)


def cmd_train(args) -> int:
    from edge_fer.train.trainer import train

    record = train(train_config_from_args(args))
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
    from edge_fer.train.trainer import load_model

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


if __name__ == "__main__":
    sys.exit(main())
