"""Wall time of one training epoch in one process and on a two-worker MultiWorkerMirroredStrategy cluster on
127.0.0.1, with the same pipeline settings and global batch.

    python benchmarks/multi_worker_epoch.py [--pipeline pipelines/ferplus-cpu.toml] [--out benchmarks/multi-worker-epoch.json]

On one machine both workers share its cores, so this measures the cost of the cluster (gradient all-reduce over
loopback gRPC, each worker running the whole input pipeline), not a speed-up. Each run is `edge-fer train
--config PIPELINE --set train.scratch.epochs=1` into a fresh folder under --work; the epoch time is the one the
trainer logs (training steps plus the validation pass), the wall time includes start-up and the final scoring.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from edge_fer.errors import run_script
from edge_fer.train.distribute import loopback_workers


def train_command(pipeline: Path, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "edge_fer.cli", "train", "--config", str(pipeline), "--set", "train.scratch.epochs=1",
            "--set", "train.head.epochs=1", "--set", "train.finetune.epochs=0", "--out", str(out), *extra]


def epoch_seconds(out: Path) -> float:
    history = next((out / "stages").glob("*/history.jsonl"))
    return json.loads(history.read_text().splitlines()[0])["seconds"]


def run(commands: list[list[str]], logs: list[Path]) -> float:
    started = time.perf_counter()
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    processes = [subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
                 for command, log in zip(commands, logs)]
    codes = [process.wait() for process in processes]
    if any(codes):
        raise SystemExit(f"a training failed (exit codes {codes}); see {', '.join(map(str, logs))}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=Path("pipelines/ferplus-cpu.toml"))
    parser.add_argument("--work", type=Path, default=Path("runs/multi-worker-epoch"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/multi-worker-epoch.json"))
    args = parser.parse_args()
    if args.work.exists() and any(args.work.iterdir()):
        raise SystemExit(f"{args.work} is not empty: remove it or pass another --work")
    args.work.mkdir(parents=True, exist_ok=True)
    single_out = args.work / "one-process"
    single_wall = run([train_command(args.pipeline, single_out, [])], [args.work / "one-process.log"])
    workers = loopback_workers(2)
    cluster_out = args.work / "two-workers"
    commands = [train_command(args.pipeline, cluster_out, ["--workers", workers, "--task-index", str(index)])
                for index in range(2)]
    cluster_wall = run(commands, [args.work / f"worker-{index}.log" for index in range(2)])
    meta = json.loads((single_out / "model.json").read_text())
    images = meta["dataset"]["sizes"]["train"]
    rows = []
    for name, out, wall in (("one process", single_out, single_wall), ("two workers, 127.0.0.1", cluster_out, cluster_wall)):
        seconds = epoch_seconds(out)
        rows.append({"run": name, "epoch_seconds": seconds, "images_per_second": round(images / seconds, 1),
                     "wall_seconds": round(wall, 1)})
    result = {"pipeline": str(args.pipeline), "dataset": meta["dataset"]["name"], "image_size": meta["image_size"],
              "global_batch": meta["config"]["train"]["batch_size"], "train_images": images,
              "cpus": os.cpu_count(), "note": "both workers share this machine's cores: overhead, not speed-up",
              "rows": rows, "slowdown": round(rows[1]["epoch_seconds"] / rows[0]["epoch_seconds"], 2)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(run_script(main))
