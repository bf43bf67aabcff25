"""Engines built where they run. TensorRT engines do not move across GPUs or TensorRT versions, so for an SSH
target that builds with trtexec the host checks the board first (bench/board.py), plans one job per TensorRT
precision from the ONNX files it was given (the source that the board's own TensorRT needs, with the flags of the
version its trtexec reports), and the board builds and times each engine (bench/engine_job.py). A prebuilt engine
is run only if its record says it was built by this board's TensorRT on this board's GPU."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edge_fer.artifacts import file_sha256
from edge_fer.errors import UserError
from edge_fer.formats import get_format
from edge_fer.targets import Target, runs_format

BOARD_SCRIPT = Path(__file__).resolve().with_name("board.py")


@dataclass
class EngineJob:
    key: str  # unique in the bundle: precision, DLA, and the source's content hash
    facts: dict  # the row's facts: the ONNX source's path and metadata, the engine's format
    job: dict  # what bench/engine_job.py runs on the board
    files: dict = field(default_factory=dict)  # bundle path -> bytes (the source ONNX, a calibration cache)


def probe_board(target: Target) -> dict:
    """The board's facts (board.py run by the target's Python, sent on stdin: nothing is uploaded yet)."""
    from edge_fer.bench import remote

    argv = [target.python, "-", target.tensorrt.trtexec or ""]
    result = remote.run_ssh(target, argv, stdin=BOARD_SCRIPT.read_bytes(), timeout=300)
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        error = result.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"cannot check {target.ssh} with {target.python}: {(error or ['no output'])[-1][:300]}") from None


def check_board(target: Target, board: dict) -> None:
    """Refuse, before any upload, a board whose Python cannot run the device side."""
    from edge_fer.bench.board import too_old

    problem = too_old(board)
    if problem:
        raise UserError(f"{target.ssh}: {problem}")


def engine_problem(target: Target, board: dict) -> str | None:
    """Why no engine can be built on this board, in one line, or None."""
    from edge_fer.targets.tensorrt_support import same_family

    if not board.get("trtexec"):
        where = target.tensorrt.trtexec or "PATH or /usr/src/tensorrt/bin/trtexec"
        return (f"no trtexec on {target.ssh} ({where}): JetPack installs it with its TensorRT packages "
                f"(sudo apt install nvidia-tensorrt), or set trtexec = PATH in targets/{target.name}.toml")
    version = board.get("trtexec_version")
    if not version:
        return f"{board['trtexec']} on {target.ssh} printed no TensorRT version banner"
    if target.device.tensorrt and not same_family(version, target.device.tensorrt):
        return (f"the board's trtexec is TensorRT {version} but targets/{target.name}.toml says {target.device.tensorrt}: "
                f"set [device] tensorrt = \"{version}\"; nothing built")
    return None


def prebuilt_problem(facts: dict, board: dict) -> str | None:
    """A prebuilt engine runs only on the TensorRT and GPU it was built for."""
    record = facts["meta"].get("engine") or {}
    name = facts["path"].name
    if not record.get("tensorrt") or not record.get("compute_capability"):
        return (f"{name} has no engine record (TensorRT version, compute capability) beside it: give the board its ONNX "
                "file instead and the engine is built there")
    if record["tensorrt"] != board.get("trtexec_version") or str(record["compute_capability"]) != str(board.get("compute_capability")):
        return (f"{name} was built by TensorRT {record['tensorrt']} for compute capability {record['compute_capability']}; "
                f"this board has TensorRT {board.get('trtexec_version')} on {board.get('compute_capability')}: give the "
                "board the ONNX file and the engine is built there")
    return None


def plan_jobs(target: Target, every_facts: list[dict], board: dict, duration_s: int) -> tuple[list[EngineJob], list]:
    """One job per TensorRT precision the target runs whose ONNX source is among the artifacts; an engine this
    board's TensorRT cannot build is (its facts, the reason) instead."""
    from edge_fer.export.mixed import float_nodes_of
    from edge_fer.export.tensorrt import EngineBuildConfig, engine_source, implicit_int8
    from edge_fer.targets.tensorrt_support import get_support

    version = board["trtexec_version"]
    support = get_support(version)
    sources = {facts["format"].name: facts for facts in every_facts}
    jobs, refused = [], []
    wanted = [(get_format(f"tensorrt-{precision}"), sources.get(engine_source(precision, support)))
              for precision in target.tensorrt.precisions]
    if "int8" in target.tensorrt.precisions:  # a mixed ONNX file among the artifacts: its engine too
        mixed = get_format("tensorrt-mixed")
        wanted.append((mixed, sources.get(mixed.engine_from)))
    for engine_format, source in wanted:
        if runs_format(target, engine_format) or source is None:
            continue
        size = int(source["image_size"])
        config = EngineBuildConfig.from_target(target, engine_format.precision, size, input_name=onnx_input_name(source["path"]),
                                               tensorrt=version, fp16_layers=float_nodes_of(source["meta"]) or None)
        try:
            jobs.append(engine_job(target, board, config, source, engine_format, duration_s, implicit_int8(config)))
        except UserError as error:
            refused.append(({**source, "format": engine_format}, str(error)))
    return jobs, refused


def engine_job(target: Target, board: dict, config, source: dict, engine_format, duration_s: int, implicit: bool) -> EngineJob:
    from edge_fer.bench.remote import bundle_key
    from edge_fer.export.tensorrt import trtexec_bench_command, trtexec_build_command

    digest = file_sha256(source["path"])
    key = f"{config.precision}{'-dla' if config.dla_core is not None else ''}-{bundle_key(source['path'])}"
    folder = Path("engines") / key
    if implicit:
        from edge_fer.export.dla import qdq_file_to_implicit

        plain, cache = qdq_file_to_implicit(source["path"], config.tensorrt)
        files = {str(folder / "model.onnx"): plain, str(folder / "calibration.cache"): cache.encode()}
        config.calibration_cache = str(folder / "calibration.cache")
    else:
        files = {str(folder / "model.onnx"): source["path"].read_bytes()}
    engine, layers = folder / "model.engine", folder / "layers.json"
    build = trtexec_build_command(folder / "model.onnx", engine, config, board["trtexec"], layer_info=layers)
    bench = trtexec_bench_command(engine, config, duration_s=duration_s, trtexec=board["trtexec"])
    sidecar = {"format": engine_format.name, "precision": config.precision, "tensorrt": config.tensorrt,
               "gpu": board.get("gpu"), "compute_capability": board.get("compute_capability"),
               "input_shape": list(config.shape(config.opt_batch)), "profile_batches": [config.min_batch, config.opt_batch, config.max_batch],
               "build_flags": build[1:], "builder": "trtexec on the board", "dla_core": config.dla_core,
               "implicit_quantization": implicit, "layer_constraints": config.layer_constraints("trtexec"),
               "source_model": source["path"].name, "source_model_sha256": digest}
    job = {"build": build, "bench": bench, "engine": str(engine), "layer_info": str(layers), "sidecar": sidecar}
    facts = {**source, "format": engine_format, "engine_key": key}
    return EngineJob(key, facts, job, files)


def prebuilt_job(facts: dict, board: dict, duration_s: int) -> EngineJob:
    """A prebuilt engine (its record matches the board): timed on the board as it is, nothing built."""
    from edge_fer.bench.remote import bundle_key
    from edge_fer.export.tensorrt import EngineBuildConfig, trtexec_bench_command

    record = facts["meta"]["engine"]
    build = record.get("build_config") or {}
    config = EngineBuildConfig(facts["format"].precision, image_size=int(build.get("image_size") or facts["image_size"]),
                               input_name=build.get("input_name", "pixels"), dla_core=build.get("dla_core"),
                               tensorrt=board["trtexec_version"])
    key = f"prebuilt-{bundle_key(facts['path'])}"
    engine = Path("engines") / key / "model.engine"
    sidecar = {**{k: v for k, v in record.items() if k != "build_config"}, "format": facts["format"].name,
               "precision": facts["format"].precision, "builder": record.get("builder", "prebuilt")}
    job = {"build": None, "engine": str(engine), "sidecar": sidecar,
           "bench": trtexec_bench_command(engine, config, duration_s=duration_s, trtexec=board["trtexec"])}
    return EngineJob(key, {**facts, "engine_key": key}, job, {str(engine): facts["path"].read_bytes()})


def bundle_files(jobs: list[EngineJob]) -> dict:
    files = {}
    for job in jobs:
        files.update(job.files)
        files[f"jobs/{job.key}.json"] = json.dumps(job.job, indent=1).encode()
    return files


def run_job(target: Target, key: str) -> dict:
    """Build and time one engine on the board; its trtexec log parsed here."""
    from edge_fer.bench.remote import remote_root, run_device_module
    from edge_fer.bench.trtexec import parse_trtexec

    answer = run_device_module(target, "engine_job", [f"{remote_root(target)}/jobs/{key}.json"])
    if "error" in answer:
        return answer
    return measured_engine(answer, parse_trtexec(answer["log"]))


def measured_engine(answer: dict, parsed: dict) -> dict:
    """A row's measurement from an engine job: trtexec's statistics, the engine's record, the board's power."""
    from edge_fer.bench.trtexec import trtexec_measurement

    engine = answer["engine"]
    measured = trtexec_measurement(parsed)
    if "error" in measured:
        return {**measured, "engine": engine}
    built = engine.get("precision_built")
    if built and built != engine["precision"]:
        return {"error": f"asked for a {engine['precision']} engine but its layers run {built} "
                         f"({engine.get('layer_datatypes')})", "engine": engine}
    qps = parsed["throughput_qps"]
    power = dict(answer.get("power") or {})
    if power.get("mean_power_w") and qps:
        power["energy_mj_per_image"] = round(power["mean_power_w"] / qps * 1000.0, 4)
    return {"format": engine["format"], **measured, "engine": engine, "power": power}


def onnx_input_name(path: Path) -> str:
    from edge_fer.export.tensorrt_rules import read_onnx

    return read_onnx(path).graph.input[0].name
