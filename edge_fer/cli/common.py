"""What every command group shares: dataset flags (declared here once), the one way from them to a dataset, KEY=VALUE
options, and the metrics table."""

from __future__ import annotations

import argparse

from edge_fer import ui
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


def add_dataset_flags(parser: argparse.ArgumentParser, positional: bool = False, required: bool = False,
                      image_size: bool = False, what: str = "the dataset") -> None:
    """The dataset flags: the adapter (positional or --dataset), --root, --label-mode, --option, and --image-size."""
    if positional:
        parser.add_argument("dataset", help="registered dataset adapter (see `edge-fer data list`)")
    else:
        parser.add_argument("--dataset", required=required, help=f"{what}: a registered adapter (edge-fer data list)")
    parser.add_argument("--root", help="the dataset's folder (not needed for synthetic)")
    parser.add_argument("--label-mode", help="label mode; the adapter's first mode is the default")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="adapter option (edge-fer data list shows the adapters)")
    if image_size:
        parser.add_argument("--image-size", type=int, help="resize every image to N×N when decoding")


def data_table(args) -> dict:
    """The dataset flags given, as a pipeline [data] table (empty where none was given)."""
    data = {key: getattr(args, key) for key in ("dataset", "root", "label_mode") if getattr(args, key, None) is not None}
    options = dict(parse_option(text) for text in getattr(args, "option", []))
    if options:
        data["options"] = options
    return data


def dataset_spec(args):
    """The dataset the flags name, or None where none was given."""
    from edge_fer.data.spec import DatasetSpec

    data = data_table(args)
    if not data:
        return None
    if not data.get("dataset"):
        raise UserError("--root, --label-mode and --option need --dataset")
    return DatasetSpec.of(data)


def load_dataset(args):
    """The dataset the flags name, decoded (at --image-size where the command has it)."""
    from edge_fer.config import check_limit

    size = getattr(args, "image_size", None)
    if size is not None:
        check_limit("image_size", size, "--image-size")
    return dataset_spec(args).load(image_size=size)


def print_metrics(metrics: dict, title: str) -> None:
    rows = []
    for split, values in metrics.items():
        worst = min((v for v in values["per_class_accuracy"].values() if v is not None), default=None)
        rows.append([split, values["count"], values["accuracy"], values["macro_f1"], worst])
    ui.out.print(ui.table(title, ["split", "images", "accuracy", "macro-F1", "worst class acc"], rows))


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (for programs) instead of tables")
