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

    for register in _command_modules():
        register(commands)
    return parser


def _command_modules():
    """Later stages add their subcommands here (each module exposes `add_commands(subparsers)`)."""
    return []


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
