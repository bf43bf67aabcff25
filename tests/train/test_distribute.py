"""train.distribute: the cluster settings (fast), and real two-worker training on 127.0.0.1 (slow: subprocesses)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_fer.cli import main
from edge_fer.errors import UserError
from edge_fer.models.loading import load_model
from edge_fer.models.weights import weights_digest
from edge_fer.train.distribute import (
    distribute_mode,
    loopback_workers,
    read_tf_config,
    tf_config_for,
)
from tests.pipeline.test_runner import TINY


def test_distribute_modes_keep_the_old_true_and_false():
    assert [distribute_mode(v) for v in (False, "none", True, "mirrored", "multi_worker")] == \
        ["none", "none", "mirrored", "mirrored", "multi_worker"]
    with pytest.raises(UserError, match="must be one of"):
        distribute_mode("parameter_server")


def test_workers_flag_becomes_tf_config_with_the_chief_first():
    config = tf_config_for("10.0.0.5:2222, node-b.lab:2222", 1)
    assert config == {"cluster": {"worker": ["10.0.0.5:2222", "node-b.lab:2222"]}, "task": {"type": "worker", "index": 1}}


@pytest.mark.hostile("option-like")
@pytest.mark.parametrize("workers, index, message", [
    ("10.0.0.5:2222", 0, "at least two"),
    ("a:1,a:1", 0, "twice"),
    ("a:1,b:2", 2, "0..1"),
    ("a:1,b:port", 0, "HOST:PORT"),
    ("a:1,b:70000", 0, "HOST:PORT"),
    ("a:1,-oProxyCommand=x:22", 0, "not a host name"),
    ("a:1,b c:22", 0, "not a host name"),
])
def test_bad_cluster_flags_are_one_line_errors(workers, index, message):
    with pytest.raises(UserError, match=message):
        tf_config_for(workers, index)


@pytest.mark.parametrize("text, message", [
    (None, "set TF_CONFIG or pass --workers"),
    ("{not json", "TF_CONFIG is not"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "is not in the cluster"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}', "'worker'"),
    pytest.param('{"cluster": {"worker": "abc"}, "task": {"type": "worker", "index": 0}}', "TF_CONFIG is not",
                 marks=pytest.mark.hostile("malformed-input")),  # was a TypeError inside TensorFlow
    pytest.param('{"cluster": {"worker": ["a:1", "no-port"]}, "task": {"type": "worker", "index": 0}}', "'no-port' is not HOST:PORT",
                 marks=pytest.mark.hostile("malformed-input")),
    pytest.param('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1.9}}', "TF_CONFIG is not",
                 marks=pytest.mark.hostile("malformed-input")),  # was rounded to task 1
])
def test_tf_config_is_checked_before_tensorflow_sees_it(monkeypatch, text, message):
    if text is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(UserError, match=message):
        read_tf_config()


def test_cli_refuses_half_a_cluster_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(["train", "--dataset", "synthetic", "--workers", "127.0.0.1:1,127.0.0.1:2", "--out", str(tmp_path / "t")]) == 2
    assert "--workers and --task-index go together" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--workers", "127.0.0.1:1,127.0.0.1:2", "--task-index", "2",
                 "--out", str(tmp_path / "t")]) == 2
    assert "--task-index must be 0..1" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--set", "train.distribute='multi_worker'"]) == 2
    assert "set TF_CONFIG or pass --workers" in capsys.readouterr().err
    assert main(["run", "--workers", "127.0.0.1:1,127.0.0.1:2", "--task-index", "0", "--set",
                 "sweep.grid={'model.image_size' = [64, 80]}"]) == 2
    assert "not in a sweep or cross-validation" in capsys.readouterr().err
    # a worker of a pipeline without a train stage: its one line (this was a NameError that no test ran into)
    assert main(["run", "--workers", "127.0.0.1:1,127.0.0.1:2", "--task-index", "1", "--set",
                 'stages=["data", "export"]']) == 2
    assert "this pipeline has no train stage for the workers to share" in capsys.readouterr().err
    assert not (tmp_path / "t").exists() and not (tmp_path / "runs").exists()


def test_where_training_runs_leaves_the_stage_hash_alone(tmp_path):
    from edge_fer.config import from_dict
    from edge_fer.pipeline.config import PipelineConfig
    from edge_fer.pipeline.runner import Pipeline

    hashes = set()
    for value in (False, "none", True, "multi_worker"):
        config = from_dict(PipelineConfig, {"name": "h", "train": {"distribute": value, "max_restarts": 7}})
        hashes.add(Pipeline(config).settings_hash("train"))
    assert len(hashes) == 1
    changed = from_dict(PipelineConfig, {"name": "h", "train": {"batch_size": 9}})
    assert Pipeline(changed).settings_hash("train") not in hashes


# ---- real clusters on 127.0.0.1 -------------------------------------------------------------------------------

LEARNING_RUN = ["--dataset", "synthetic", "-o", "train_count=1024", "-o", "valid_count=140", "-o", "test_count=280",
                "-o", "occlusion=0", "--variant", "patt_lite", "--image-size", "64", "--weights", "none",
                "--schedule", "from_scratch", "--batch-size", "32", "--set", "train.scratch.epochs=3",
                "--set", "train.scratch.warmup_epochs=0.5"]
SHORT_RUN = ["--dataset", "synthetic", "-o", "train_count=64", "-o", "valid_count=21", "-o", "test_count=21",
             "--variant", "patt_lite", "--image-size", "64", "--weights", "none", "--schedule", "from_scratch",
             "--batch-size", "8", "--steps-per-epoch", "6", "--set", "train.scratch.epochs=4"]


def start(arguments: list[str], log: Path, command: str = "train") -> subprocess.Popen:
    env = {**os.environ, "EDGE_FER_LOG": str(log.with_suffix(".native.log"))}
    env.pop("TF_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "edge_fer.cli", command, *arguments],
                            stdout=open(log.with_suffix(".out"), "w"), stderr=open(log, "w"), env=env)


def cluster_arguments(out: Path, workers: str, index: int) -> list[str]:
    return ["--out", str(out), "--workers", workers, "--task-index", str(index)]


def finish(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def history_epochs(out: Path) -> list[int]:
    lines = (out / "stages" / "scratch" / "history.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines if line.strip()]


def assert_worker_holds_the_chiefs_weights(out: Path) -> None:
    chief = json.loads((out / "model.json").read_text())
    worker = json.loads((out / "worker-1.json").read_text())
    model, _ = load_model(out)  # the saved file, not only the digest the chief wrote
    assert weights_digest(model.get_weights()) == chief["weights_sha256"] == worker["weights_sha256"]
    assert chief["distribute"] == {"mode": "multi_worker", "workers": 2}


@pytest.mark.slow
def test_two_workers_match_a_one_process_run_of_the_same_global_batch(tmp_path):
    workers_list = loopback_workers(2)
    single = start([*LEARNING_RUN, "--out", str(tmp_path / "single")], tmp_path / "single.log")
    assert finish(single, 900) == 0, (tmp_path / "single.log").read_text()[-2000:]
    workers = [start([*LEARNING_RUN, *cluster_arguments(tmp_path / "cluster", workers_list, i)], tmp_path / f"w{i}.log")
               for i in range(2)]
    codes = [finish(process, 1800) for process in workers]
    assert codes == [0, 0], [(tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(2)]
    out = tmp_path / "cluster"
    assert_worker_holds_the_chiefs_weights(out)
    assert history_epochs(out) == history_epochs(tmp_path / "single") == [1, 2, 3]
    assert not (out / "worker-0.json").exists() and "wrote the model" in (tmp_path / "w1.out").read_text()
    one = json.loads((tmp_path / "single" / "model.json").read_text())["metrics"]["test"]["accuracy"]
    two = json.loads((out / "model.json").read_text())["metrics"]["test"]["accuracy"]
    chance = 1 / 7
    assert one > chance + 0.08 and two > chance + 0.08, (one, two)  # both learned something
    noise = 2.5 * math.sqrt(2 * (one * (1 - one)) / 280)  # 2.5 standard errors of a difference of two accuracies
    assert abs(one - two) <= noise, (one, two, noise)


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_rejoins_and_training_resumes_from_the_backup(tmp_path):
    workers_list = loopback_workers(2)
    out = tmp_path / "cluster"
    chief = start([*SHORT_RUN, *cluster_arguments(out, workers_list, 0)], tmp_path / "w0.log")
    worker = start([*SHORT_RUN, *cluster_arguments(out, workers_list, 1)], tmp_path / "w1.log")
    history = out / "stages" / "scratch" / "history.jsonl"
    deadline = time.monotonic() + 600
    while not (history.is_file() and history.read_text().strip()):
        assert chief.poll() is None and worker.poll() is None, (tmp_path / "w0.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "epoch 1 never finished"
        time.sleep(0.2)
    time.sleep(2)  # into epoch 2
    assert history_epochs(out) == [1]
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=30) == -signal.SIGKILL
    restarted = start([*SHORT_RUN, *cluster_arguments(out, workers_list, 1)], tmp_path / "w1-restarted.log")
    assert finish(chief, 900) == 0, (tmp_path / "w0.log").read_text()[-3000:]
    assert finish(restarted, 900) == 0, (tmp_path / "w1-restarted.log").read_text()[-3000:]
    assert history_epochs(out) == [1, 2, 3, 4]  # epoch 2 was redone once, epoch 1 not at all
    chief_log = (tmp_path / "w0.log").read_text()
    assert "restarting this worker (1 of 3)" in chief_log
    assert "resumed from the end-of-epoch backup: epochs 1-1 are done, epoch 2 starts" in chief_log
    assert "epochs 1-1 are done" in (tmp_path / "w1-restarted.log").read_text()
    assert_worker_holds_the_chiefs_weights(out)


@pytest.mark.slow
def test_a_pipeline_trains_on_two_workers_and_the_chief_runs_the_other_stages(tmp_path):
    pipeline = tmp_path / "cluster.toml"
    stages = 'stages = ["data", "train", "export", "evaluate", "bench", "report"]'
    pipeline.write_text(TINY.format(runs=tmp_path / "runs", steps=4, epochs=2).replace(stages, 'stages = ["data", "train", "export"]'))
    workers_list = loopback_workers(2)
    processes = [start([str(pipeline), "--workers", workers_list, "--task-index", str(i)], tmp_path / f"w{i}.log",
                       command="run") for i in range(2)]
    codes = [finish(process, 900) for process in processes]
    assert codes == [0, 0], [(tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(2)]
    runs = tmp_path / "runs" / "tiny"
    assert_worker_holds_the_chiefs_weights(runs / "train")
    assert all((runs / stage / "manifest.json").is_file() for stage in ("data", "train", "export"))
    assert "runs the other stages" in (tmp_path / "w1.out").read_text()
    assert "pipeline tiny" in (tmp_path / "w0.out").read_text()
    again = start([str(pipeline), "--workers", workers_list, "--task-index", "1"], tmp_path / "again.log", command="run")
    assert finish(again, 300) == 0 and "nothing to train" in (tmp_path / "again.out").read_text()


@pytest.mark.hostile("bounded")
def test_a_worker_whose_peer_never_comes_says_so_and_stops(tmp_path):
    """MultiWorkerMirroredStrategy waits for every worker inside TensorFlow, without a word and deaf to SIGTERM."""
    import subprocess
    import sys
    import time

    from tests.loopback_ssh import free_port

    ports = [free_port(), free_port()]
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "edge_fer.cli", "train", "--dataset", "synthetic", "-o", "train_count=20",
                             "-o", "valid_count=7", "-o", "test_count=7", "--image-size", "64", "--weights", "none",
                             "--set", "train.peer_timeout_s=6", "--out", str(tmp_path / "run"),
                             "--workers", f"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}", "--task-index", "0"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode != 0 and time.monotonic() - started < 120
    assert "waiting for the other workers" in result.stderr
    assert f"worker 1 at 127.0.0.1:{ports[1]} did not join" in result.stderr
