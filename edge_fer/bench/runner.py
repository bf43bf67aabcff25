"""`edge-fer bench`: every artifact on one target, each in its own process (so load time and peak RSS are its
own), locally or over SSH. Each artifact gets a status (passed / failed and why) and the run goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_fer import ui
from edge_fer.artifacts import file_sha256, read_metadata
from edge_fer.bench import board_engines, remote, store
from edge_fer.bench.timing import TimingSettings
from edge_fer.data.spec import DatasetSpec
from edge_fer.errors import UserError
from edge_fer.formats import get_format
from edge_fer.status import FAILED, PASSED
from edge_fer.targets import Target, load_target, runs_format


@dataclass
class BenchSettings(TimingSettings):
    threads: int | None = None
    store: str = str(store.DEFAULT_STORE)

    def runner_args(self, threads: int | None, round_index: int = 0) -> list[str]:
        """The device runner's flags for one round (the whole SingleStream when rounds = 1). Round 0 also runs
        Offline and scores; later rounds only add latencies."""
        timing = self.per_round() if self.rounds > 1 else self
        args = ["--warmup", str(timing.warmup_queries), "--min-queries", str(timing.min_queries),
                "--min-duration", str(timing.min_duration_s), "--max-duration", str(timing.max_duration_s),
                "--offline-batch", str(self.offline_batch), "--offline-duration", str(self.offline_min_duration_s)]
        args += ["--keep-latencies"] if self.rounds > 1 else []
        args += ["--latency-only"] if round_index > 0 else []
        return args + (["--threads", str(threads)] if threads else [])


class ScoringData:
    """The test split and, where the dataset has one, the validation split after it: resized once per input size,
    written where the runner can read it. Artifacts are chosen on validation and reported on test."""

    def __init__(self, spec: DatasetSpec | dict | None, folder: Path):
        self.folder, self.files = folder, {}
        self.dataset, self.valid = None, None
        if spec:
            self.dataset = DatasetSpec.of(spec).load()
            self.split = self.dataset.splits.get("test") or self.dataset.splits.get("valid")
            if self.split is None:
                raise UserError(f"dataset {self.dataset.name} has no test or valid split to score on")
            if self.split is not self.dataset.splits.get("valid"):
                self.valid = self.dataset.splits.get("valid")

    def scores(self, probabilities) -> dict:
        """{"scores": test metrics, "scores_valid": validation metrics} from the runner's probabilities, which come
        in the order of the images file: the test split, then the validation split."""
        from edge_fer.evaluate import classification_metrics

        classes, count = self.dataset.classes, len(self.split.labels)
        scored = {"scores": classification_metrics(self.split.labels, probabilities[:count], classes, self.split.votes)}
        if self.valid is not None and len(probabilities) == count + len(self.valid.labels):
            scored["scores_valid"] = classification_metrics(self.valid.labels, probabilities[count:], classes,
                                                            self.valid.votes)
        return scored

    def images_for(self, size: int) -> Path | None:
        if self.dataset is None:
            return None
        if size not in self.files:
            from edge_fer.data.preprocess import resize_images

            path = self.folder / f"images-{size}.npy"
            images = self.split.images if self.valid is None else np.concatenate([self.split.images, self.valid.images])
            np.save(path, resize_images(images, size), allow_pickle=False)
            self.files[size] = path
        return self.files[size]


NO_SCORING = ScoringData(None, Path("."))


def artifact_facts(path: Path) -> dict:
    from edge_fer.artifacts import check_file_hash, format_of_artifact

    meta = read_metadata(path) or {}
    check_file_hash(path, meta)
    export_format = format_of_artifact(path)
    return {"path": path, "meta": meta, "format": export_format,
            "image_size": meta.get("image_size") or None, "classes": meta.get("classes")}


def run_local(path: Path, images: Path | None, settings: BenchSettings, threads: int | None, round_index: int = 0) -> dict:
    argv = [sys.executable, "-m", "edge_fer.bench.device_runner", str(path), *settings.runner_args(threads, round_index)]
    if images is not None:
        argv += ["--images", str(images)]
    result = subprocess.run(argv, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if not lines:
        return {"error": (result.stderr.strip().splitlines() or ["the runner printed nothing"])[-1]}
    return json.loads(lines[-1])


def run_trtexec(path: Path, target: Target, facts: dict, settings: BenchSettings) -> dict:
    """trtexec's own timing of an engine on this machine, with the flags the target's TensorRT parses. A missing
    trtexec is this artifact's failed row (with the reason), not the end of the run."""
    from edge_fer.bench.trtexec import parse_trtexec, trtexec_measurement
    from edge_fer.export.tensorrt import JETPACK_TRTEXEC, EngineBuildConfig, find_trtexec, trtexec_bench_command

    build = (facts["meta"].get("engine") or {}).get("build_config", {})
    size = build.get("image_size") or facts["image_size"]
    if not size:
        return {"error": f"{path.name} has no engine record beside it (its .json): cannot tell its input shape; build it "
                         "with `edge-fer engine`, which writes one"}
    config = EngineBuildConfig.from_target(target, facts["format"].precision, int(size),
                                           input_name=build.get("input_name", "pixels"))
    duration = max(1, int(settings.min_duration_s))
    trtexec = find_trtexec(target.tensorrt.trtexec)
    if trtexec is None:
        where = target.tensorrt.trtexec or f"PATH or {JETPACK_TRTEXEC}"
        return {"error": f"trtexec not found ({where}); install TensorRT or set trtexec = PATH in targets/{target.name}.toml"}
    try:
        result = subprocess.run(trtexec_bench_command(path, config, duration_s=duration, trtexec=trtexec),
                                capture_output=True, text=True)
    except OSError as error:
        return {"error": f"could not run {trtexec}: {error.strerror}"}
    output = result.stdout
    if result.returncode != 0:  # its exit code and last lines, not "no summary"
        from edge_fer.bench.engine_job import tail

        return {"error": f"trtexec exited {result.returncode}: {tail(result.stdout + result.stderr)}"}
    measured = trtexec_measurement(parse_trtexec(output))
    return measured if "error" in measured else {"format": facts["format"].name, **measured}


def to_row(run_id: str, target: Target, facts: dict, measured: dict, scoring: ScoringData) -> dict:
    from edge_fer.versions import software_versions

    path, meta, export_format = facts["path"], facts["meta"], facts["format"]
    row = {"run_id": run_id, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "target": target.name, "artifact": str(path), "format": export_format.name,
           # an engine's precision as read back from it where that was possible, else the format's
           "precision": (measured.get("engine") or {}).get("precision_built") or export_format.precision,
           "variant": meta.get("variant"), "image_size": facts["image_size"],
           "agreement": meta.get("agreement_with_float", (meta.get("parity") or {}).get("top1_agreement")),
           "versions": {"host": software_versions(), "artifact": meta.get("versions")}}
    if path.is_file():
        row.update(artifact_sha256=file_sha256(path), size_bytes=path.stat().st_size)
    engine = measured.get("engine") or {}
    if "engine_bytes" in engine:  # an engine built on the board from this ONNX file: its own size, no parity measured
        row.update(size_bytes=engine["engine_bytes"], agreement=None)
    if "error" in measured:
        return {**row, "status": FAILED, "reason": measured["error"], "metrics": measured}
    single = measured.get("single_stream", {})
    metrics = {key: value for key, value in measured.items() if key != "probabilities"}
    metrics["macs"] = meta.get("macs")
    row.update(status=PASSED, p50_ms=single.get("p50_ms"), p90_ms=single.get("p90_ms"), p99_ms=single.get("p99_ms"),
               mean_ms=single.get("mean_ms"),
               images_per_s=(measured.get("offline") or {}).get("images_per_s") or single.get("qps"))
    if "probabilities" in measured and scoring.dataset is not None:
        from edge_fer.artifacts import check_probabilities

        try:
            probabilities = check_probabilities(measured["probabilities"], len(scoring.dataset.classes), path.name)
        except UserError as error:  # scored as nothing, not as a 0.25 "passed"
            return {**row, "status": FAILED, "reason": str(error), "metrics": metrics}
        metrics.update(scoring.scores(probabilities))
        scored = metrics["scores"]
        row.update(accuracy=scored["accuracy"], macro_f1=scored["macro_f1"], dataset=scoring.dataset.name,
                   synthetic=int(scoring.dataset.synthetic))
    row["metrics"] = metrics
    return row


def check_artifact(facts: dict, target: Target, scoring: ScoringData) -> str | None:
    export_format = facts["format"]
    refused = runs_format(target, export_format)
    if refused:
        return refused
    if export_format.runtime == "tensorrt" and export_format.precision not in target.tensorrt.precisions:
        return f"target {target.name} has no TensorRT {export_format.precision}"
    if scoring.dataset is not None and facts["classes"] and list(facts["classes"]) != list(scoring.dataset.classes):
        return f"the artifact's classes {facts['classes']} are not the dataset's {list(scoring.dataset.classes)}"
    if scoring.dataset is not None and not facts["image_size"]:
        return "no metadata beside the artifact (its .json): cannot tell its input size for scoring"
    return None


def bench(artifacts: list[str | Path], target_name: str, settings: BenchSettings, dataset_spec: dict | None = None,
          bar=None, run_id: str | None = None) -> list[dict]:
    """Time (and score) every artifact on one target; its rows go to the store. `bar`: a shared rich Progress
    (a fleet bench shows one line per target), else this call shows its own."""
    target = load_target(target_name)
    every_facts = checked_facts(artifacts)  # bad metadata fails here, before the store
    store.check(settings.store)
    run_id = run_id or new_run_id()
    if bar is None:
        with ui.progress() as own_bar:
            return bench_target(every_facts, target, settings, dataset_spec, own_bar, run_id)
    return bench_target(every_facts, target, settings, dataset_spec, bar, run_id)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def checked_facts(artifacts: list[str | Path]) -> list[dict]:
    missing = [str(path) for path in artifacts if not Path(path).is_file()]
    if missing:
        raise UserError(f"artifact does not exist: {', '.join(missing)}")
    return [artifact_facts(Path(artifact)) for artifact in artifacts]


def bench_target(every_facts: list[dict], target: Target, settings: BenchSettings, dataset_spec: dict | None, bar,
                 run_id: str) -> list[dict]:
    threads = settings.threads or target.threads
    rows: list[dict | None] = [None] * len(every_facts)
    with tempfile.TemporaryDirectory() as folder, ExitStack() as held:
        scoring = ScoringData(dataset_spec, Path(folder))
        board = None
        if target.access == "ssh":
            board = on_board(target, every_facts, settings)
            held.enter_context(remote.bundle_lock(target, target.busy_wait_s, lambda: ui.log(
                f"{target.name}: another bench is using ~/{remote.remote_root(target)}; waiting up to "
                f"{target.busy_wait_s:.0f} s for it to finish")))
        planned = []  # (position, facts)
        for position, facts in enumerate(every_facts):
            if board and position in board["sources_only"]:
                continue  # an ONNX file given only to build engines from
            problem = check_artifact(facts, target, scoring) or (board and board["prebuilt_problems"].get(position))
            if problem:
                rows[position] = to_row(run_id, target, facts, {"error": problem}, scoring)
            elif not (board and position in board["prebuilt"]):
                planned.append((position, facts))
        if board:
            rows += [to_row(run_id, target, facts, {"error": reason}, scoring) for facts, reason in board["refused"]]
            planned += [(len(rows) + index, job.facts) for index, job in enumerate(board["jobs"])]
            rows += [None] * len(board["jobs"])
            if planned:
                python_rows = [f for _, f in planned if "engine_key" not in f]
                images = {f["path"]: scoring.images_for(f["image_size"]) for f in python_rows if scoring.dataset is not None}
                remote.upload_bundle(target, remote.build_bundle([f["path"] for f in python_rows], images,
                                                                 board_engines.bundle_files(board["jobs"])))
        measured = measure_in_rounds(planned, target, scoring, settings, threads, bar)
        for position, facts in planned:
            rows[position] = to_row(run_id, target, facts, measured[position], scoring)
            if board:
                rows[position]["metrics"]["board"] = board["facts"]
    done = [row for row in rows if row is not None]
    store.insert(settings.store, done)
    return done


def on_board(target: Target, every_facts: list[dict], settings: BenchSettings) -> dict:
    """An SSH target: the board checked before anything is uploaded, and what it will do with each file. Where it
    builds with trtexec, the ONNX files are engine sources (a row only if the target runs them with onnxruntime),
    engines are built there, and a prebuilt engine runs only if its record matches the board."""
    facts_of_board = board_engines.probe_board(target)
    board_engines.check_board(target, facts_of_board)
    board = {"facts": facts_of_board, "sources_only": set(), "prebuilt": set(), "prebuilt_problems": {}, "jobs": [],
             "refused": []}
    if not target.tensorrt.use_trtexec:
        return board
    duration = max(1, int(settings.min_duration_s))
    source_formats = {f"onnx-{kind}" for kind in ("fp32", "fp16", "int8-qdq")}
    for position, facts in enumerate(every_facts):
        name = facts["format"].name
        if name in source_formats and runs_format(target, facts["format"]):
            board["sources_only"].add(position)
        if facts["format"].runtime == "tensorrt":
            board["prebuilt"].add(position)
    problem = board_engines.engine_problem(target, facts_of_board)
    if problem:
        sources = [f for f in every_facts if f["format"].name in source_formats]
        engines = [get_format(f"tensorrt-{p}") for p in target.tensorrt.precisions]
        engines = [engine for engine in engines if not runs_format(target, engine)]
        board["refused"] = [({**sources[0], "format": engine}, problem) for engine in engines] if sources else []
        board["prebuilt_problems"] = {position: problem for position in board["prebuilt"]}
        return board
    board["jobs"], board["refused"] = board_engines.plan_jobs(target, every_facts, facts_of_board, duration)
    for position in sorted(board["prebuilt"]):
        facts = every_facts[position]
        reason = board_engines.prebuilt_problem(facts, facts_of_board)
        if reason:
            board["prebuilt_problems"][position] = reason
        else:
            board["jobs"].append(board_engines.prebuilt_job(facts, facts_of_board, duration))
    return board


def measure_in_rounds(planned: list, target: Target, scoring: ScoringData, settings: BenchSettings,
                      threads: int | None, bar) -> dict:
    """Every planned artifact, `settings.rounds` times, interleaved (forward, then backward): on a host whose
    speed drifts, artifacts measured minutes apart are not comparable, so each one's latencies are pooled from
    rounds spread over the whole run. Round 0 also scores and runs Offline. A round that fails fails the artifact."""
    from edge_fer.bench.timing import pool_rounds, round_order

    rounds = settings.rounds
    results: dict[int, list[dict]] = {position: [] for position, _ in planned}
    task = bar.add_task(f"benchmarking on {target.name}", total=len(planned) * rounds)
    for round_index in range(rounds):
        for position, facts in round_order(planned, round_index):
            bar.update(task, description=f"{facts['format'].name} on {target.name}"
                       + (f" (round {round_index + 1}/{rounds})" if rounds > 1 else ""))
            if not any("error" in earlier for earlier in results[position]):  # a failed file is not tried again
                results[position].append(measure(facts, target, scoring, settings, threads, round_index))
            bar.advance(task)
    measured = {}
    for position, per_round in results.items():
        failed = next((index for index, one in enumerate(per_round) if "error" in one), None)
        if failed is not None:
            error = per_round[failed]["error"]
            measured[position] = {"error": f"round {failed + 1}: {error}" if failed else error}
        elif len(per_round) > 1 and "latencies_ms" in per_round[0].get("single_stream", {}):
            measured[position] = {**per_round[0], "single_stream": pool_rounds([one["single_stream"] for one in per_round]),
                                  "host": hosts_of_rounds([one.get("host") for one in per_round])}
        else:
            measured[position] = per_round[0]
        measured[position].get("single_stream", {}).pop("latencies_ms", None)
    return measured


def hosts_of_rounds(hosts: list[dict | None]) -> dict | None:
    """A row timed in rounds: the host facts of every round, the largest other load as the row's, and BUSY if any
    round was (round 0's facts alone left 90% of a ten-round timing unaccounted for)."""
    known = [host for host in hosts if host]
    if not known:
        return None
    loads = [host["other_load_cores"] for host in known if host.get("other_load_cores") is not None]
    return {**known[0], "other_load_cores": max(loads) if loads else None, "busy": any(h.get("busy") for h in known),
            "rounds": [{key: host.get(key) for key in ("other_load_cores", "loadavg_1m", "busy")} for host in known]}


def measure(facts: dict, target: Target, scoring: ScoringData, settings: BenchSettings, threads: int | None,
            round_index: int = 0) -> dict:
    if "engine_key" in facts:  # built (or prebuilt) and timed by trtexec on the board: one run, not rounds
        return board_engines.run_job(target, facts["engine_key"]) if round_index == 0 else {"single_stream": {}}
    if facts["format"].runtime == "tensorrt" and target.tensorrt.use_trtexec:
        # trtexec times by its own rules (warm-up, duration, its own statistics): one run, not rounds
        return run_trtexec(facts["path"], target, facts, settings) if round_index == 0 else {"single_stream": {}}
    images = scoring.images_for(facts["image_size"]) if scoring.dataset is not None else None
    if target.access == "ssh":
        return remote.run_remote_artifact(target, facts["path"], settings.runner_args(threads, round_index),
                                          images is not None)
    return run_local(facts["path"], images, settings, threads, round_index)


def bench_fleet(artifacts: list[str | Path], target_names: list[str], settings: BenchSettings,
                dataset_spec: dict | None = None) -> list[dict]:
    """The same artifacts on several targets at once, one thread per target (remote targets spend their time
    waiting on SSH). A target that fails as a whole (unreachable, key refused, no runtime) gets a failed row per
    artifact with the reason; the others finish. Every row lands in one store under one run id."""
    from concurrent.futures import ThreadPoolExecutor

    targets = [load_target(name) for name in dict.fromkeys(target_names)]  # a bad target file fails before any work
    every_facts = checked_facts(artifacts)
    store.check(settings.store)
    run_id = new_run_id()

    def one_target(target: Target) -> list[dict]:
        try:
            return bench_target(every_facts, target, settings, dataset_spec, bar, run_id)
        except (UserError, OSError, subprocess.SubprocessError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            rows = [to_row(run_id, target, facts, {"error": f"target failed: {reason}"}, NO_SCORING) for facts in every_facts]
            store.insert(settings.store, rows)
            return rows

    with ui.progress() as bar, ThreadPoolExecutor(max_workers=len(targets)) as pool:
        results = list(pool.map(one_target, targets))
    return [row for rows in results for row in rows]
