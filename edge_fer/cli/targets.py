"""`edge-fer targets list|new`: the device profiles, and a new one to edit."""

from __future__ import annotations

from edge_fer import ui
from edge_fer.cli.common import add_json_flag
from edge_fer.errors import UserError


def register(commands) -> None:
    targets = commands.add_parser("targets", help="the device profiles (targets/*.toml), and a new one to edit") \
        .add_subparsers(dest="targets_command", metavar="ACTION")
    listing = targets.add_parser("list", help="every target: kind, how it is reached, its formats")
    add_json_flag(listing)
    listing.set_defaults(run=cmd_targets_list)
    new = targets.add_parser("new", help="write NAME.toml from a target like it, to edit "
                                         "(e.g. edge-fer targets new my-orin --like jetson-orin-nano)")
    new.add_argument("name", help="the new target's name")
    new.add_argument("--like", required=True, help="the target to start from (edge-fer targets list)")
    new.add_argument("--out", help="the file to write (default: NAME.toml here)")
    new.set_defaults(run=cmd_targets_new)


def cmd_targets_list(args) -> int:
    from edge_fer.targets import list_targets, load_target

    rows = [load_target(name) for name in list_targets()]
    if args.json:
        ui.print_json([{"name": t.name, "kind": t.kind, "access": t.access, "ssh": t.ssh, "runtimes": t.runtimes, "formats": t.formats,
                        "tensorrt": t.device.tensorrt, "description": t.description} for t in rows])
        return 0
    ui.out.print(ui.table("targets", ["name", "kind", "reached", "TensorRT", "description"],
                          [[t.name, t.kind, t.ssh or t.access, t.device.tensorrt, t.description] for t in rows]))
    return 0


def cmd_targets_new(args) -> int:
    from pathlib import Path

    from edge_fer import atomic
    from edge_fer.targets import new_target_text

    out = Path(args.out or f"{args.name}.toml")
    if out.exists() or out.is_symlink():
        raise UserError(f"{out} exists; give another --out or name")
    atomic.write_bytes(out, new_target_text(args.name, args.like).encode())
    ui.out.print(f"wrote {out}: set ssh and check [device]; then edge-fer bench FILES --target {out}", soft_wrap=True,
                 highlight=False, markup=False)
    return 0
