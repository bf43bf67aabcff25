"""Time the main job stage by stage: `edge-fer run` on the built-in quickstart in a fresh folder with an empty
decode cache, as on a new machine; with --fresh-clone, the README's whole first command in a fresh clone (venv,
install, run), install and run timed apart.

    python benchmarks/quickstart_time.py [--fresh-clone] [--out benchmarks/quickstart-time.json]

Records each stage's seconds (from its manifest), the wall time, whether every export passed its floor, the
artifacts' accuracies, and how many cores other processes kept busy meanwhile (a number above 0.25 means the
timing is an upper bound: rerun on a quiet host).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_fer import atomic  # noqa: E402
from edge_fer.bench.host import BUSY_CORES, busy_seconds, cpu_model  # noqa: E402
from edge_fer.errors import run_script  # noqa: E402


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path, env: dict) -> dict:
    """Run a command; its wall seconds and the cores other processes kept busy meanwhile."""
    started, machine, ours = time.perf_counter(), busy_seconds(), children_cpu_seconds()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode not in (0, 1):  # 1: the run finished with a failed export, recorded below
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    others, machine_after = None, busy_seconds()
    if machine is not None and machine_after is not None:
        others = round(max(0.0, (machine_after - machine) - (children_cpu_seconds() - ours)) / wall, 3)
    return {"seconds": round(wall, 1), "exit_code": result.returncode, "other_load_cores": others,
            "busy": others is not None and others > BUSY_CORES}


def stage_times(run_folder: Path) -> dict:
    return {stage.name: json.loads((stage / "manifest.json").read_text())["seconds"]
            for stage in sorted(run_folder.iterdir(), key=lambda p: p.stat().st_mtime)
            if (stage / "manifest.json").is_file()}


def outcome(run_folder: Path) -> dict:
    exported = json.loads((run_folder / "export" / "export.json").read_text())["results"]
    evaluated = json.loads((run_folder / "evaluate" / "evaluate.json").read_text())
    scores = next(iter(evaluated.values()))
    return {"exports": {r["format"]: r["status"] for r in exported},
            "every_export_passed": all(r["status"] == "passed" for r in exported),
            "accuracy": {name: round(m["accuracy"], 4) for name, m in scores.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh-clone", action="store_true", help="clone, make a venv, install, then run")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "quickstart-time.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "EDGE_FER_CACHE": str(scratch / "cache")}  # nothing decoded before, as on a new machine
        blocks = {}
        if args.fresh_clone:
            subprocess.run(["git", "clone", "-q", str(REPO), str(scratch / "clone")], check=True)
            work = scratch / "clone"
            blocks["install"] = timed(["sh", "-c", "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'"], work, env)
            command = [str(work / ".venv" / "bin" / "edge-fer"), "run"]
        else:
            work = scratch
            command = ["edge-fer", "run", "--set", f"runs={scratch / 'runs'}"]
        blocks["run"] = timed(command, work, env)
        run_folder = (work / "runs" / "quickstart") if args.fresh_clone else scratch / "runs" / "quickstart"
        record = {"command": "python benchmarks/quickstart_time.py" + (" --fresh-clone" if args.fresh_clone else ""),
                  "host": {"cpu": cpu_model(), "logical_cpus": os.cpu_count()}, "blocks": blocks,
                  "stages": stage_times(run_folder), **outcome(run_folder),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic.write_json(args.out, record)
    for name, block in blocks.items():
        busy = " (BUSY host: an upper bound)" if block["busy"] else ""
        print(f"{name}: {block['seconds']} s, other load {block['other_load_cores']} cores{busy}")
    print("stages: " + ", ".join(f"{k} {v} s" for k, v in record["stages"].items()))
    print(f"every export passed: {record['every_export_passed']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
