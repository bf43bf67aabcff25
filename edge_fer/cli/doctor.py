"""`edge-fer doctor`: what this machine has for each stage, and what to install for the rest."""

from __future__ import annotations

from edge_fer import ui
from edge_fer.cli.common import add_json_flag


def register(commands) -> None:
    doctor = commands.add_parser("doctor", help="what this machine (and a target) has for each stage, and how to add "
                                                "what is missing (e.g. edge-fer doctor --target jetson-orin-nano)")
    doctor.add_argument("--target", action="append", default=[],
                        help="also check a target (targets/NAME.toml or a path); an SSH target is asked over SSH")
    add_json_flag(doctor)
    doctor.set_defaults(run=cmd_doctor)


def cmd_doctor(args) -> int:
    from edge_fer.doctor import MISSING, OK, diagnose

    checks = diagnose(args.target)
    if args.json:
        ui.print_json([check.as_dict() for check in checks])
    else:
        rows = [[c.what, c.status, c.found, c.needed_for, c.fix] for c in checks]
        ui.out.print(ui.table("edge-fer doctor", ["component", "status", "found", "needed for", "to add it"], rows,
                              caption=f"{sum(c.status == OK for c in checks)} of {len(checks)} present; "
                                      "MISSING stops the main job, 'not here' only the task named"))
    return 1 if any(check.status == MISSING for check in checks) else 0
