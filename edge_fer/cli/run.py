"""`edge-fer run`: a pipeline file (default: the built-in quickstart), or a sweep of them."""

from __future__ import annotations

from edge_fer import ui
from edge_fer.cli.common import add_json_flag
from edge_fer.cli.train import add_cluster_flags, apply_cluster_flags
from edge_fer.errors import UserError
from edge_fer.status import STAGE_FAILURES


def register(commands) -> None:
    from edge_fer.pipeline.stages import STAGES

    run = commands.add_parser("run", help="run a pipeline file's stages (default: pipelines/quickstart.toml)")
    run.add_argument("pipeline", nargs="?", help="pipeline TOML (default: the built-in quickstart)")
    run.add_argument("--from", dest="start", choices=STAGES, help="rerun from this stage on, whatever the manifests say")
    run.add_argument("--only", choices=STAGES, help="run this stage alone, whatever its manifest says (its inputs must exist)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a pipeline value, e.g. train.scratch.epochs=3")
    run.add_argument("--point", action="append", default=[], metavar="NAME",
                     help="in a sweep, run only this point (repeat for more); the others stay as they are")
    add_cluster_flags(run)
    add_json_flag(run)
    run.set_defaults(run=cmd_run)


def cmd_run(args) -> int:
    import shlex
    from pathlib import Path

    from edge_fer.config import apply_override, from_dict, load_toml
    from edge_fer.pipeline.config import DEFAULT_PIPELINE, PipelineConfig, validate
    from edge_fer.pipeline.runner import Pipeline, joins_as_chief

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
    if args.point:
        raise UserError(f"{path} has no sweep: --point names a sweep point; leave it out to run the pipeline")
    if not joins_as_chief(config, one_stage=bool(args.only or args.start)):
        return 0
    summary = Pipeline(config, commands=[command]).run(start=args.start, only=args.only)
    if args.json:
        ui.print_json(summary)
    else:
        print_run(config, summary)
    return 1 if any(s["status"] in STAGE_FAILURES for s in summary) else 0


def print_run(config, summary: list[dict]) -> None:
    from edge_fer.pipeline.summary import WIDTH, artifact_rows, busy_footnote, stage_rows

    console = ui.narrow(ui.out, WIDTH)
    console.print(ui.table(f"pipeline {config.name}", ["stage", "status", "seconds", "summary"], stage_rows(summary)))
    artifacts = artifact_rows(config.folder)
    if artifacts:
        console.print(ui.table("artifacts", ["artifact", "export", "accuracy", "p50 ms", "size MB"], artifacts,
                               caption=busy_footnote(artifacts)))


def finish_sweep(config, data: dict, commands: list[str], args) -> int:
    from edge_fer.pipeline.summary import WIDTH
    from edge_fer.pipeline.sweep import POINT_COLUMNS, plan_sweep, point_rows, run_sweep

    outcome = run_sweep(config, data, commands, start=args.start, only=args.only, points=args.point)
    if args.json:
        ui.print_json(outcome)
    else:
        console = ui.narrow(ui.out, WIDTH)
        console.print(ui.table(f"sweep {config.name}", POINT_COLUMNS, point_rows(plan_sweep(config, data))))
        if "report" in outcome:
            console.print(f"report: {outcome['report']['markdown']}")
    return 1 if any(s["status"] in STAGE_FAILURES for p in outcome["points"] for s in p["stages"]) else 0
