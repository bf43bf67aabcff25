"""`edge-fer data list|inspect`."""

from __future__ import annotations

from edge_fer import ui
from edge_fer.cli.common import add_dataset_flags, add_json_flag, load_dataset


def register(commands) -> None:
    data = commands.add_parser("data", help="list and inspect datasets").add_subparsers(dest="data_command", metavar="ACTION")
    listing = data.add_parser("list", help="registered dataset adapters")
    add_json_flag(listing)
    listing.set_defaults(run=cmd_data_list)
    inspect = data.add_parser("inspect", help="decode every image (filling the cache) and count splits and classes")
    add_dataset_flags(inspect, positional=True, image_size=True)
    add_json_flag(inspect)
    inspect.set_defaults(run=cmd_data_inspect)


def cmd_data_list(args) -> int:
    from edge_fer.data import get_adapter, list_datasets

    rows = []
    for name in list_datasets():
        adapter = get_adapter(name)
        rows.append({"name": name, "classes": len(adapter.classes) or None, "label_modes": list(adapter.label_modes),
                     "synthetic": adapter.synthetic})
    if args.json:
        ui.print_json(rows)
    else:
        ui.out.print(ui.table("datasets", ["name", "classes", "label modes", "synthetic"],
                              [[r["name"], r["classes"] or "from folders", ", ".join(r["label_modes"]),
                                "yes" if r["synthetic"] else ""] for r in rows]))
    return 0


def cmd_data_inspect(args) -> int:
    dataset = load_dataset(args)
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
