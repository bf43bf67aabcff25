"""Sweeps: one pipeline file, many runs. Each point runs the stages up to evaluate in its own folder (so caching and
resume work per point); then one bench over every point's artifacts and one report, so every latency on the
accuracy-vs-p50 plot comes from the same session on the same host."""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from edge_fer import atomic, ui
from edge_fer.errors import UserError
from edge_fer.pipeline.config import PipelineConfig, validate
from edge_fer.pipeline.runner import Pipeline
from edge_fer.pipeline.stages import (
    STAGE_TABLE,
    RunContext,
    bench_settings,
    exported_artifacts,
    peak_rows,
    scoring_spec,
    store_path,
)
from edge_fer.status import PASSED

MAX_POINTS = 100
AFTER_POINTS = tuple(stage.name for stage in STAGE_TABLE if stage.once_per_sweep)  # run once, over all points


@dataclass
class SweepPoint:
    name: str
    overrides: dict  # dotted config key -> value


def sweep_points(name: str, grid: dict, points: list) -> list[SweepPoint]:
    found = []
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"sweep.grid.{key} must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    size = 1
    for key in keys:  # counted before anything is built: a 20^6 grid is refused, not allocated
        size *= len(grid[key])
    if size + len(points) > MAX_POINTS:
        raise UserError(f"the sweep has {size + len(points)} points; at most {MAX_POINTS} (split it into several files)")
    for values in itertools.product(*(grid[key] for key in keys)) if keys else []:
        label = "-".join(f"{key.split('.')[-1]}{value}" for key, value in zip(keys, values))
        found.append(SweepPoint(f"{name}-{label}", dict(zip(keys, values))))
    for index, entry in enumerate(points):
        found.append(explicit_point(index, entry, {point.name: point for point in found}))
    if len(found) > MAX_POINTS:
        raise UserError(f"the sweep has {len(found)} points; at most {MAX_POINTS} (split it into several files)")
    names = [point.name for point in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"sweep point names repeat: {', '.join(repeated)}; give each point its own name")
    return found


POINT_KEYS = ("name", "set", "extends")


def explicit_point(index: int, entry, earlier: dict) -> SweepPoint:
    """One entry of sweep.points; `extends` starts it from an earlier point's settings, its own `set` on top."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("set", {}), dict):
        raise UserError(f"sweep.points[{index}] must be a table with name = \"...\" and set = {{key = value}}")
    unknown = sorted(set(entry) - set(POINT_KEYS))
    if unknown:
        raise UserError(f"sweep point {entry['name']}: unknown key {', '.join(unknown)}; a point takes {', '.join(POINT_KEYS)}")
    base = entry.get("extends")
    if base is not None and (not isinstance(base, str) or base not in earlier):
        raise UserError(f"sweep point {entry['name']}: extends = {base!r} names no point above it; give an earlier "
                        "point's name")
    inherited = earlier[base].overrides if base is not None else {}
    return SweepPoint(entry["name"], {**inherited, **entry.get("set", {})})


def point_data(data: dict, point: SweepPoint, stages: list[str]) -> dict:
    from edge_fer.config import set_dotted

    payload = copy.deepcopy(data)
    payload.pop("sweep", None)
    for key, value in point.overrides.items():
        if key.split(".")[0] in ("name", "sweep", "stages", "runs"):
            raise UserError(f"sweep point {point.name}: {key} cannot vary within a sweep")
        set_dotted(payload, key, value, where=f"sweep point {point.name}")
    payload["name"] = point.name
    payload["stages"] = [stage for stage in stages if stage not in AFTER_POINTS]
    return payload


def build_points(config, data: dict, check=None) -> list:
    """Every point's PipelineConfig, each passed to `check` as it is built; an error names its point."""
    from edge_fer.config import from_dict

    configs = []
    for point in sweep_points(config.name, config.sweep.grid, config.sweep.points):
        try:
            point_config = from_dict(PipelineConfig, point_data(data, point, config.stages))
            if check:
                check(point_config)
        except UserError as error:
            raise UserError(f"sweep point {point.name}: {error}") from None
        configs.append(point_config)
    return configs


def plan_sweep(config, data: dict) -> list:
    """Every point's PipelineConfig, built and validated before any point starts."""
    return build_points(config, data, check=lambda point_config: validate(point_config, Path.cwd()))


def chosen_points(point_configs: list, names: list[str] | None) -> list:
    """The points named (all when none are): an unknown name is refused before any work."""
    if not names:
        return point_configs
    known = [point.name for point in point_configs]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UserError(f"no sweep point named {', '.join(unknown)}; the points are: {', '.join(known)}")
    return [point for point in point_configs if point.name in names]


def run_sweep(config, data: dict, commands: list[str], start: str | None = None, only: str | None = None,
              points: list[str] | None = None) -> dict:
    point_configs = plan_sweep(config, data)
    to_run = chosen_points(point_configs, points)
    results = []
    if only not in AFTER_POINTS:
        for index, point_config in enumerate(to_run, start=1):
            ui.log(f"sweep point {index}/{len(to_run)}: {point_config.name}")
            summary = Pipeline(point_config, commands=commands).run(start=start, only=only)
            results.append({"point": point_config.name, "stages": summary})
    sweep = Pipeline(config, commands=commands)
    outcome = {"points": results, "folder": str(sweep.folder)}
    if "bench" in config.stages and only in (None, "bench"):
        outcome["bench"] = bench_points(sweep, point_configs)
    if "report" in config.stages and only in (None, "report"):
        outcome["report"] = report_points(sweep, point_configs)
    return outcome


def bench_points(sweep, point_configs: list) -> dict:
    """One bench over every point's exported artifacts (grouped by the dataset they are scored on)."""
    from edge_fer.bench.runner import bench

    section, settings = sweep.config.bench, bench_settings(sweep.context)
    groups: dict[str, tuple[dict | None, list[Path]]] = {}
    for point_config in point_configs:
        point = RunContext(point_config)
        if not (point.stage_dir("export") / "export.json").is_file():
            ui.warn(f"sweep point {point_config.name} has no export yet; not benchmarked")
            continue
        spec = scoring_spec(point) if section.score else None
        key = json.dumps(spec.as_dict() if spec else None, sort_keys=True)
        groups.setdefault(key, (spec, []))[1].extend(
            exported_artifacts(point, section.time_failed_check))
    rows = []
    for spec, artifacts in groups.values():
        rows += bench(artifacts, section.target, settings, spec)
    if section.peak:
        rows += peak_rows(section.target, settings)
    folder = sweep.stage_dir("bench")
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(folder / "bench.json", rows)
    return {"store": settings.store, "rows": len(rows), "passed": sum(r["status"] == PASSED for r in rows)}


def point_rows(point_configs: list) -> list[list]:
    """point, what it changes, training seconds, float test accuracy, best int8 artifact and its accuracy."""
    rows = []
    for point_config in point_configs:
        folder = point_config.folder
        model = atomic.read_json(folder / "train" / "model.json", {})
        evaluated = atomic.read_json(folder / "evaluate" / "evaluate.json", {})
        scores = next((v for v in evaluated.values() if isinstance(v, dict)), {})
        int8 = {name: m["accuracy"] for name, m in scores.items() if "int8" in name and m.get("accuracy") is not None}
        best = max(int8, key=int8.get) if int8 else None
        float_accuracy = (scores.get("keras") or (model.get("metrics") or {}).get("test") or {}).get("accuracy")
        teacher = (model.get("distillation") or {}).get("ensemble_test_accuracy")
        rows.append([point_config.name, model.get("train_seconds"), warm_start_text(model.get("init_from")),
                     None if float_accuracy is None else round(float_accuracy, 4),
                     best, None if best is None else round(int8[best], 4), teacher])
    return rows


def warm_start_text(init_from: dict | None) -> str | None:
    """Where a warm-started point's weights came from and what that model's own training cost."""
    if not init_from:
        return None
    source = Path(init_from["path"])
    folder = source.parent if source.suffix == ".keras" else source
    seconds = init_from.get("train_seconds")
    if seconds is None:  # a record from before the field: the start's own model.json, if it is still there
        seconds = atomic.read_json(folder / "model.json", {}).get("train_seconds")
    return folder.name + (f" ({seconds:.0f} s)" if seconds is not None else "")


POINT_COLUMNS = ["point", "train s", "starts from", "float accuracy", "best int8", "int8 accuracy", "teacher accuracy"]


def point_accuracy_tables(point_configs: list, split: str) -> list[str]:
    """Per point: the float model and the int8 artifacts, with macro-F1 and per-class accuracy."""
    from edge_fer.report.sections import accuracy_tables

    results = {}
    for point_config in point_configs:
        evaluated = atomic.read_json(point_config.folder / "evaluate" / "evaluate.json", {})
        results[point_config.name] = {mode: {name: m for name, m in models.items() if name == "keras" or "int8" in name}
                                      for mode, models in evaluated.items() if isinstance(models, dict)}
    return accuracy_tables(results, split, lambda run, name: f"{run}: {name}") if results else []


def report_points(sweep, point_configs: list) -> dict:
    from edge_fer.report import build_report, markdown_table
    from edge_fer.report.sections import included_sections, load_references

    section = sweep.config.report
    out = Path(section.out) if section.out else sweep.stage_dir("report")
    points = {p.name: p for p in sweep_points(sweep.config.name, sweep.config.sweep.grid, sweep.config.sweep.points)}
    changes = "\n".join(f"- `runs/{c.name}`: " + (", ".join(f"{k} = {v}" for k, v in points[c.name].overrides.items())
                                                   or "the file's settings") for c in point_configs)
    extras = [("Sweep points", markdown_table(POINT_COLUMNS, point_rows(point_configs)) + "\n\nRun folders:\n\n" + changes),
              ("Accuracy per point (float and int8)", "\n".join(point_accuracy_tables(point_configs, sweep.config.evaluate.split)))]
    extras += included_sections(section.include)
    report = build_report(store_path(sweep.context), out, commands=sweep.context.commands + section.commands, name=section.name,
                          extras=extras, references=load_references(section.references))
    return {"markdown": report["markdown"], "html": report["html"]}
