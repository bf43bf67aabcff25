"""`edge-fer bench`, `edge-fer bundle`, `edge-fer pick` and `edge-fer report`."""

from __future__ import annotations

from edge_fer import ui
from edge_fer.cli.common import add_dataset_flags, add_json_flag, dataset_spec
from edge_fer.errors import UserError
from edge_fer.status import PASSED

STORE_HELP = "results store (default: the newest of benchmarks/results.sqlite and runs/*/results.sqlite)"


def register(commands) -> None:
    from edge_fer.bench.store import DEFAULT_STORE

    bench = commands.add_parser("bench", help="latency (MLPerf SingleStream/Offline), size, memory and accuracy per artifact")
    bench.add_argument("artifacts", nargs="*", help="exported files (.tflite, .onnx, .engine)")
    bench.add_argument("--peak", action="store_true", help="also measure the host's peak MAC rate per runtime and precision")
    bench.add_argument("--target", action="append", help="target profile (targets/NAME.toml or a path); repeat it to "
                       "benchmark several targets at once, one thread each (default: host-cpu)")
    add_dataset_flags(bench, what="score every artifact on this dataset's test split")
    bench.add_argument("--min-queries", type=int, default=200, help="SingleStream queries at least (default 200)")
    bench.add_argument("--min-duration", type=float, default=5.0, help="seconds of SingleStream at least")
    bench.add_argument("--warmup", type=int, default=20, help="untimed queries first (default 20)")
    bench.add_argument("--offline-batch", type=int, default=32, help="batch of the Offline (throughput) run")
    bench.add_argument("--offline-duration", type=float, default=3.0, help="seconds of the Offline run at least")
    bench.add_argument("--rounds", type=int, default=1, help="split SingleStream into this many rounds, interleaved "
                       "across the artifacts, so a host whose speed drifts treats them alike")
    bench.add_argument("--threads", type=int, help="runtime threads (default: the target's)")
    bench.add_argument("--store", default=str(DEFAULT_STORE), help=f"results store to add rows to (default {DEFAULT_STORE})")
    add_json_flag(bench)
    bench.set_defaults(run=cmd_bench)

    bundle = commands.add_parser("bundle", help="a tarball with the device-side runner and artifacts, to copy by hand")
    bundle.add_argument("artifacts", nargs="+", help="exported files to carry")
    bundle.add_argument("--target", required=True, help="the target it is for (edge-fer targets list)")
    bundle.add_argument("--out", help="the tarball (default edge_fer-bundle-TARGET.tar.gz)")
    bundle.set_defaults(run=cmd_bundle)

    chooser = commands.add_parser("pick", help="the most accurate benchmarked artifact within a latency budget")
    chooser.add_argument("--store", help=STORE_HELP)
    chooser.add_argument("--target", required=True, help="the target the rows were timed on (e.g. host-cpu)")
    chooser.add_argument("--max-p50-ms", type=float, required=True, help="latency budget: p50 at batch 1, in ms")
    chooser.add_argument("--format", help="comma-separated formats to choose from (default: all)")
    chooser.add_argument("--dataset", help="compare rows scored on this dataset only (needed when the store mixes datasets)")
    add_json_flag(chooser)
    chooser.set_defaults(run=cmd_pick)

    report = commands.add_parser("report", help="Markdown and HTML report (tables, plots) from the results store")
    report.add_argument("--store", help=STORE_HELP)
    report.add_argument("--out", default="benchmarks/report", help="the report's folder (default benchmarks/report)")
    add_json_flag(report)
    report.set_defaults(run=cmd_report)


def cmd_bench(args) -> int:
    import tempfile
    from pathlib import Path

    from edge_fer.bench.runner import BenchSettings, bench, bench_fleet
    from edge_fer.config import from_dict

    settings = from_dict(BenchSettings, {"min_queries": args.min_queries, "min_duration_s": args.min_duration,
                                         "warmup_queries": args.warmup, "offline_batch": args.offline_batch,
                                         "offline_min_duration_s": args.offline_duration,
                                         "rounds": args.rounds, "threads": args.threads, "store": args.store}, "--")
    if not args.artifacts and not args.peak:
        raise UserError("give the artifacts to benchmark, or --peak for the host's MAC rate")
    targets = args.target or ["host-cpu"]
    run = (lambda files, spec: bench(files, targets[0], settings, spec)) if len(targets) == 1 else \
        (lambda files, spec: bench_fleet(files, targets, settings, spec))
    rows = run(args.artifacts, dataset_spec(args)) if args.artifacts else []
    if args.peak:
        from edge_fer.bench.peak import write_peak_artifacts

        ui.log("building the peak models (1×1 convolutions) in every CPU format")
        with tempfile.TemporaryDirectory() as folder:
            rows += run(write_peak_artifacts(Path(folder)), None)  # random inputs, unscored
    if args.json:
        ui.print_json(rows)
    else:
        from edge_fer.bench.peak import peak_rates
        from edge_fer.report import table_rows

        for target in dict.fromkeys(row["target"] for row in rows):
            mine = [row for row in rows if row["target"] == target]
            print_tables(f"on {target}", table_rows(mine, target, peak_rates(rows)))
        for (target, name), rate in peak_rates(rows).items():
            ui.out.print(f"peak {name} on {target}: {rate / 1e9:.1f} GMAC/s")
        ui.out.print(f"{len(rows)} rows added to {args.store}")
    return 1 if any(row["status"] != PASSED for row in rows) else 0


def cmd_bundle(args) -> int:
    from pathlib import Path

    from edge_fer import atomic
    from edge_fer.bench.remote import build_bundle
    from edge_fer.targets import load_target

    target = load_target(args.target)
    artifacts = [Path(a) for a in args.artifacts]
    missing = [str(a) for a in artifacts if not a.is_file()]
    if missing:
        raise UserError(f"artifact does not exist: {', '.join(missing)}")
    out = Path(args.out or f"edge_fer-bundle-{target.name}.tar.gz")
    atomic.write_bytes(out, build_bundle(artifacts))
    ui.out.print(f"wrote {out}: copy it to {target.ssh or target.name}, `tar -xzf {out.name}` and run ./run.sh")
    return 0


def cmd_pick(args) -> int:
    from edge_fer.bench.pick import against_runner_up, candidates, summary, within_budget
    from edge_fer.formats import get_format

    if not (args.max_p50_ms > 0 and args.max_p50_ms < float("inf")):
        raise UserError(f"--max-p50-ms must be a positive number of milliseconds, got {args.max_p50_ms}")
    from edge_fer.bench import store

    formats = [get_format(name.strip()).name for name in args.format.split(",")] if args.format else None
    args.store = str(store.newest(args.store))
    rows = candidates(args.store, args.target, formats, args.dataset)
    order, split = within_budget(rows, args.max_p50_ms)
    chosen = order[0] if order else None
    fastest = min(rows, key=lambda row: row["p50_ms"], default=None)
    facts = None if chosen is None else summary(chosen, split)
    second = None if chosen is None else against_runner_up(chosen, order[1] if len(order) > 1 else None, split)
    if args.json:
        ui.print_json({"target": args.target, "max_p50_ms": args.max_p50_ms, "candidates": len(rows), "pick": facts,
                       "runner_up": second})
        return 0 if chosen else 2
    if chosen is None:
        nearest = f"; the fastest is {fastest['format']} at {fastest['p50_ms']:.3f} ms" if fastest else ""
        ui.err.print(f"nothing fits: no scored artifact on {args.target} has p50 <= {args.max_p50_ms} ms"
                     f" ({len(rows)} candidates){nearest}", soft_wrap=True, markup=False)
        return 2
    ui.out.print(ui.table(f"pick on {args.target}, p50 <= {args.max_p50_ms} ms ({len(rows)} candidates)",
                          ["field", "value"], [[k, pick_cell(v)] for k, v in facts.items()],
                          caption=None if split == "valid" else "chosen on TEST accuracy: these rows have no validation "
                          "scores (benched before validation scoring); bench them again to choose on validation"))
    if second:
        ui.out.print(runner_up_line(second), soft_wrap=True, markup=False)
    return 0


def runner_up_line(second: dict) -> str:
    test = second["mcnemar"]
    counts = "" if test is None else (f": {test['only_a']} images only the choice got right, {test['only_b']} only "
                                      f"the runner-up, McNemar p = {test['p']:.3g}")
    return (f"against the runner-up {second['artifact']} ({second['format']}, p50 {second['p50_ms']:.3f} ms) on "
            f"{second['split']}{counts}: {second['verdict']}")


def pick_cell(value):
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{value[0]:.4g}-{value[1]:.4g}"
    return value


def cmd_report(args) -> int:
    from edge_fer.bench import store
    from edge_fer.report import build_report, dataset_note

    args.store = str(store.newest(args.store))
    store.require(args.store)
    report = build_report(args.store, args.out)
    if args.json:
        ui.print_json(report)
        return 0
    for section in report["sections"]:
        print_tables(f"on {section['target']}", section["rows"], dataset_note(section))
    ui.out.print(f"report: {args.out}/report.md and {args.out}/report.html ({len(report['history'])} runs in {args.store})")
    return 0


def print_tables(where: str, rows: list[list], caption: str | None = None) -> None:
    """The accuracy table and the speed table (batch 1 latency; images/s batched) of benchmark rows."""
    from edge_fer.report.tables import split_tables

    accuracy, speed = split_tables(rows)
    ui.out.print(ui.table(f"accuracy {where}", *accuracy, caption=caption))
    ui.out.print(ui.table(f"speed {where} (batch 1 latency; images/s batched)", *speed))
