"""`edge-fer model list|summary`."""

from __future__ import annotations

from edge_fer import ui
from edge_fer.cli.common import add_json_flag


def register(commands) -> None:
    model = commands.add_parser("model", help="list and summarise model variants") \
        .add_subparsers(dest="model_command", metavar="ACTION")
    listing = model.add_parser("list", help="registered model variants")
    add_json_flag(listing)
    listing.set_defaults(run=cmd_model_list)
    summary = model.add_parser("summary", help="parameters and MACs of a variant")
    summary.add_argument("variant", help="a registered variant (edge-fer model list)")
    summary.add_argument("--image-size", type=int, default=224, help="input size in pixels (default 224)")
    summary.add_argument("--num-classes", type=int, default=8, help="classes of the head (default 8)")
    summary.add_argument("--alpha", type=float, default=1.0, help="MobileNet width multiplier (0.25, 0.5, 0.75, 1.0, ...)")
    add_json_flag(summary)
    summary.set_defaults(run=cmd_model_summary)


def cmd_model_list(args) -> int:
    from edge_fer.models import list_models, model_doc

    rows = [{"variant": name, "description": model_doc(name)} for name in list_models()]
    if args.json:
        ui.print_json(rows)
    else:
        ui.out.print(ui.table("models", ["variant", "description"], [[r["variant"], r["description"]] for r in rows]))
    return 0


def cmd_model_summary(args) -> int:
    from edge_fer.config import check_limit
    from edge_fer.models import create_model
    from edge_fer.models.summary import model_summary

    check_limit("num_classes", args.num_classes, "--num-classes")
    check_limit("image_size", args.image_size, "--image-size")
    model = create_model(args.variant, args.num_classes, args.image_size, weights="none", alpha=args.alpha)
    summary = model_summary(model)
    if args.json:
        ui.print_json(summary)
    else:
        ui.out.print(ui.table(f"model {args.variant}", ["field", "value"], [[k, v] for k, v in summary.items()]))
    return 0
