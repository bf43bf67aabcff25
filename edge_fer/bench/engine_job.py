"""Device side: build one TensorRT engine with the board's own trtexec, write its sidecar beside it, then time it
with trtexec while the board's power is sampled. Prints one JSON object; the host parses trtexec's log.

    python -m edge_fer.bench.engine_job JOB.json

The job (written by the host, see bench/board_engines.py) holds the two trtexec argument lists, the engine path,
the layer-information path (TensorRT 8.4+) and the sidecar's facts. Runs on Python 3.8+ with the standard library.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from edge_fer import atomic
from edge_fer.bench.board import PowerMonitor
from edge_fer.engine_info import precision_from_layer_info

FALLBACK = re.compile(r"Layer '?([^']+?)'? \(\w+\): Unsupported on DLA|layer (.+?) is not supported on DLA, falling back to GPU")


def tail(text: str, lines: int = 8) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def placements(build_log: str) -> dict:
    """DLA builds: the layers TensorRT moved to the GPU, as its build log names them."""
    fallback = [first or second for first, second in FALLBACK.findall(build_log)]
    return {"gpu_fallback_layers": fallback, "dla_subgraphs": build_log.count("ForeignNode")}


def run(job: dict) -> dict:
    if job["build"] is None:  # a prebuilt engine the host found right for this board
        return bench(job, dict(job["sidecar"]))
    build = subprocess.run(job["build"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if build.returncode != 0 or not os.path.isfile(job["engine"]):
        return {"error": f"trtexec build exited {build.returncode}: {tail(build.stdout)}"}
    sidecar = {**job["sidecar"], **precision_from_layer_info(job.get("layer_info"))}
    if job["sidecar"].get("dla_core") is not None:
        sidecar.update(placements(build.stdout))
    sidecar["engine_bytes"] = os.path.getsize(job["engine"])
    atomic.write_bytes(job["engine"] + ".json", json.dumps(sidecar, indent=1).encode())
    return bench(job, sidecar)


def bench(job: dict, sidecar: dict) -> dict:
    with PowerMonitor() as monitor:
        bench = subprocess.run(job["bench"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if bench.returncode != 0:
        return {"error": f"trtexec exited {bench.returncode}: {tail(bench.stdout)}", "engine": sidecar}
    return {"engine": sidecar, "log": bench.stdout[-20000:], "power": monitor.record()}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        with open(argv[0]) as handle:
            job = json.load(handle)
        os.chdir(job.get("root") or os.path.dirname(os.path.dirname(os.path.abspath(argv[0]))))
        result = run(job)
    except Exception as error:  # this engine's failure, reported as its row; the host goes on
        result = {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}
    print(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
