"""`edge-fer run`: the stages of a pipeline file in order, each in runs/<pipeline>/<stage>/ with a manifest.

A stage is skipped when its manifest shows the same settings hash and input hashes and its outputs are intact.
The manifest is written last (atomically), so an interrupted stage (Ctrl-C, kill -9) has none and is redone
on the next run; the stages before it keep theirs and are skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from edge_fer import atomic, quiet, ui
from edge_fer.artifacts import file_sha256
from edge_fer.errors import UserError
from edge_fer.pipeline.config import PipelineConfig
from edge_fer.pipeline.stages import STAGES, RunContext, get_stage
from edge_fer.status import RAN, RAN_WITH_FAILURES, SKIPPED_UP_TO_DATE, SKIPPED_WITH_FAILURES

# Settings added after runs already existed. At their default they leave a stage's hash as it was, so a run made
# before them stays cached instead of retraining for a setting it could not have had.
LATER_DEFAULTS = {("model", "alpha"): 1.0, ("train", "distill"): {"teacher": [], "temperature": 4.0, "weight": 0.7},
                  ("bench", "peak"): False, ("bench", "time_failed_check"): False, ("report", "references"): [],
                  ("bench", "rounds"): 1, ("bench", "offline_min_duration_s"): 3.0, ("train", "draw_labels"): False,
                  ("train", "label_smoothing"): 0.0, ("train", "mixup"): 0.0, ("train", "erasing"): 0.0, ("train", "ema"): 0.0, ("train", "cutmix"): 0.0,
                  ("train", "init_seed"): None, ("qat", "seed"): None,
                  ("bench", "artifacts"): [], ("export", "keep_float"): [],
                  ("report", "precision"): {}}


# Settings that change where or how a stage runs, not what it makes: a run trained on one machine and resumed on
# several is the same run. Hashed at the value older runs were hashed with.
HOW_NOT_WHAT = {("train", "distribute"): False, ("train", "max_restarts"): None, ("train", "peer_timeout_s"): None}


def without_later_defaults(config: dict) -> dict:
    for (section, key), default in LATER_DEFAULTS.items():
        if config.get(section, {}).get(key, default) == default:
            config[section].pop(key, None)
    for (section, key), hashed_as in HOW_NOT_WHAT.items():
        if section in config:
            config[section].pop(key, None)
            if hashed_as is not None:
                config[section][key] = hashed_as
    return config


@contextlib.contextmanager
def run_lock(folder: Path):
    """One edge-fer process per run folder: a second one (another terminal, a sweep naming a run still training)
    would train into the same checkpoints. The lock is the kernel's, so a killed process never leaves it behind."""
    import fcntl

    handle = open(folder / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"{folder} is in use by {holder}; wait for it to finish or give this run another name") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"edge-fer pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


MANIFEST_KEYS = {"settings_hash": str, "inputs": dict, "outputs": dict}


def read_manifest(stage_dir: Path) -> dict | None:
    """A stage's manifest, None where there is none; one line if the file is not one this program wrote."""
    path = stage_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or not all(isinstance(manifest.get(k), t) for k, t in MANIFEST_KEYS.items()) \
            or not all(isinstance(v, str) for v in manifest["outputs"].values()):
        raise UserError(f"{path} is not an edge-fer manifest: delete it (that stage runs again) and rerun")
    return manifest


def write_manifest(stage_dir: Path, manifest: dict) -> None:
    atomic.write_json(stage_dir / "manifest.json", manifest)


def output_hashes(stage_dir: Path) -> dict[str, str]:
    """Every file the stage left (checkpoints and partial files excepted)."""
    hashes = {}
    for path in sorted(stage_dir.rglob("*")):
        relative = path.relative_to(stage_dir).as_posix()
        if path.is_file() and relative not in ("manifest.json", ".settings") and not atomic.is_partial(path) \
                and not relative.startswith("stages/"):
            hashes[relative] = file_sha256(path)
    return hashes


def outputs_intact(stage_dir: Path, manifest: dict) -> bool:
    return all((stage_dir / name).is_file() and file_sha256(stage_dir / name) == sha for name, sha in manifest["outputs"].items())


class Pipeline:
    def __init__(self, config: PipelineConfig, commands: list[str] | None = None):
        self.config = config
        self.folder = config.folder
        self.context = RunContext(config, commands or [])

    def stage_dir(self, stage: str) -> Path:
        return self.context.stage_dir(stage)

    def settings_hash(self, stage: str) -> str:
        config = without_later_defaults(asdict(self.config))
        return digest({section: config[section] for section in get_stage(stage).sections} | {"stage": stage})

    def inputs_hash(self, stage: str) -> dict:
        inputs = {}
        for upstream in get_stage(stage).upstream:
            if upstream not in self.config.stages:
                continue
            manifest = read_manifest(self.stage_dir(upstream))
            if manifest is None:
                raise UserError(f"stage {stage!r} needs stage {upstream!r}: run it first (drop --only)")
            inputs[upstream] = digest(manifest["outputs"])
        return inputs

    def up_to_date(self, stage: str) -> bool:
        manifest = read_manifest(self.stage_dir(stage))
        intact = get_stage(stage).intact
        return (manifest is not None and manifest["settings_hash"] == self.settings_hash(stage)
                and manifest["inputs"] == self.inputs_hash(stage) and outputs_intact(self.stage_dir(stage), manifest)
                and (intact is None or intact(self.context)))

    @staticmethod
    def prepare(stage_dir: Path, key: str) -> None:
        """Keep a stage's partial work (training checkpoints) only for the same settings and inputs. Work done
        under other settings is moved aside to <stage>.previous (one generation), never deleted outright: a
        finished training run is too costly to lose to a changed setting."""
        marker = stage_dir / ".settings"
        if stage_dir.exists() and marker.is_file() and marker.read_text() != key:
            previous = stage_dir.with_name(f"{stage_dir.name}.previous")
            shutil.rmtree(previous, ignore_errors=True)
            stage_dir.rename(previous)
            ui.warn(f"{stage_dir.name}: settings or inputs changed; the earlier output was moved to {previous}")
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / "manifest.json").unlink(missing_ok=True)
        marker.write_text(key)

    def check_no_links(self) -> None:
        """The run folder and its stage folders are real folders: a symbolic link there would send every write
        of the run outside the folder the user chose."""
        for path in (self.folder, *(self.stage_dir(stage) for stage in STAGES)):
            if path.is_symlink():
                raise UserError(f"{path} is a symbolic link (to {os.readlink(path)}): a run writes only inside its own "
                                "folder; remove the link or give the run another name")

    def run(self, start: str | None = None, only: str | None = None) -> list[dict]:
        self.check_no_links()
        self.folder.mkdir(parents=True, exist_ok=True)
        with run_lock(self.folder):
            return self.run_stages(start, only)

    def run_stages(self, start: str | None, only: str | None) -> list[dict]:
        from edge_fer.versions import software_versions

        stages = [s for s in STAGES if s in self.config.stages]
        for name in (start, only):
            if name is not None and name not in stages:
                raise UserError(f"stage {name!r} is not in this pipeline ({', '.join(stages)})")
        if only:
            stages = [only]
        forced = set(stages[stages.index(start):]) if start else set(stages) if only else set()
        self.folder.mkdir(parents=True, exist_ok=True)
        if quiet.current_log is not None:  # the command line's log of TensorFlow's own messages
            ui.log(f"TensorFlow and converter messages: {quiet.native_output_to(self.folder / 'native.log')}")
        summary = []
        for stage in stages:
            if stage not in forced and self.up_to_date(stage):
                manifest = read_manifest(self.stage_dir(stage)) or {}
                # a stage that finished with failed artifacts is reported again on every run, not hidden by the skip
                status = SKIPPED_WITH_FAILURES if manifest.get("failed") else SKIPPED_UP_TO_DATE
                ui.log(f"[{stage}] up to date, {status}")
                summary.append({"stage": stage, "status": status, **manifest.get("summary", {})})
                continue
            stage_dir = self.stage_dir(stage)
            inputs = self.inputs_hash(stage)
            self.prepare(stage_dir, digest([self.settings_hash(stage), inputs]))
            ui.log(f"[{stage}] running")
            started = time.perf_counter()
            result = get_stage(stage).run(self.context, stage_dir)
            manifest = {"stage": stage, "settings_hash": self.settings_hash(stage), "inputs": inputs,
                        "outputs": output_hashes(stage_dir), "summary": result.get("summary", {}),
                        "metrics": result.get("metrics"), "versions": software_versions(),
                        "failed": result.get("status") == RAN_WITH_FAILURES,
                        "seconds": round(time.perf_counter() - started, 1)}
            write_manifest(stage_dir, manifest)
            ui.log(f"[{stage}] done in {manifest['seconds']} s")
            summary.append({"stage": stage, "status": result.get("status", RAN), **manifest["summary"],
                            "seconds": manifest["seconds"]})
        return summary


def chief_train_is_current(config: PipelineConfig) -> bool:
    """The chief's train stage is done for these settings (so it will not train, and a worker has no one to join)."""
    pipeline = Pipeline(config)
    if "train" not in config.stages:
        raise UserError("--workers: this pipeline has no train stage for the workers to share")
    manifest = read_manifest(pipeline.stage_dir("train"))
    return bool(manifest) and manifest.get("settings_hash") == pipeline.settings_hash("train")


def joins_as_chief(config: PipelineConfig, one_stage: bool) -> bool:
    """Multi-worker training: the chief joins the cluster before any other TensorFlow work, then runs the
    pipeline; another worker trains beside the chief into its (shared) train folder, then stops here (False).
    one_stage: --from or --only was given (they run on one machine)."""
    from edge_fer.pipeline.stages import train_config_of
    from edge_fer.train.distribute import create_placement, distribute_mode, is_chief_task, read_tf_config
    from edge_fer.train.trainer import train

    if distribute_mode(config.train.distribute) != "multi_worker":
        return True
    if one_stage:
        raise UserError("--from and --only run on one machine: drop --workers (the train stage is what workers share)")
    tf_config = read_tf_config()
    task = tf_config["task"]
    if is_chief_task(tf_config):
        create_placement("multi_worker", config.train.peer_timeout_s)
        return True
    if chief_train_is_current(config):
        ui.out.print(f"worker {task['index']}: the chief's train stage is up to date; nothing to train")
        return False
    placement = create_placement("multi_worker", config.train.peer_timeout_s)
    train(train_config_of(config, Pipeline(config).stage_dir("train")))
    ui.out.print(f"worker {placement.task_index} of {placement.workers} finished training; the chief "
                 "wrote the model and runs the other stages")
    return False
