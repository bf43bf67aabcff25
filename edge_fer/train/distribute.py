"""Where training runs: one device, MirroredStrategy over local GPUs, or MultiWorkerMirroredStrategy across machines.

Multi-worker training keeps the single-machine meaning of every setting: `train.batch_size` is the *global*
batch, split evenly across the workers (each takes its share of every batch, in the same order a single process
would see them), so steps per epoch, the learning-rate schedule (counted in optimizer steps) and the epoch count
are those of a one-process run of the same batch.

The cluster comes from `TF_CONFIG` (or `edge-fer train --workers HOST:PORT,... --task-index N`, which writes it).
Worker 0 is the chief: it alone writes the run folder's files. Every worker must see the run folder at the same
path (a shared mount): Keras's BackupAndRestore restores every worker from the chief's backup there, and a check
at start-up refuses a folder the workers do not share.

When a worker dies, the others' collective operations fail. They re-execute themselves (`restart_after_peer_loss`)
and wait at start-up for the whole cluster; once the dead worker is restarted, every worker restores the last
end-of-epoch backup and training continues from there.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge_fer import quiet, ui
from edge_fer.errors import UserError
from edge_fer.models.weights import copy_layer_weights

MODES = ("none", "mirrored", "multi_worker")
RESTARTS_VARIABLE = "EDGE_FER_WORKER_RESTARTS"
TOKEN_NAME = ".cluster-token"


def distribute_mode(value) -> str:
    """`train.distribute` as one of MODES (false/true are the older spellings of "none"/"mirrored")."""
    if value is False or value == "none":
        return "none"
    if value is True or value == "mirrored":
        return "mirrored"
    if value == "multi_worker":
        return value
    raise UserError(f"train.distribute must be one of {', '.join(map(repr, MODES))}, got {value!r}")


def parse_worker_address(text: str) -> str:
    host, colon, port = text.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--workers: {text!r} is not HOST:PORT (e.g. 10.0.0.5:12345)")
    if host.startswith("-") or any(c.isspace() for c in host):
        raise UserError(f"--workers: {host!r} is not a host name")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not all(part and (part.replace("-", "").isalnum()) for part in host.split(".")):
            raise UserError(f"--workers: {host!r} is not a host name or IP address") from None
    return f"{host}:{int(port)}"


def loopback_workers(count: int) -> str:
    """`count` free 127.0.0.1 addresses for --workers: a cluster on one machine (tests, overhead measurements)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for listener in sockets:
        listener.bind(("127.0.0.1", 0))
    addresses = ",".join(f"127.0.0.1:{listener.getsockname()[1]}" for listener in sockets)
    for listener in sockets:
        listener.close()
    return addresses


def tf_config_for(workers: str, task_index: int) -> dict:
    """The TF_CONFIG of worker `task_index` in the cluster `workers` (comma-separated HOST:PORT, chief first)."""
    addresses = [parse_worker_address(part) for part in workers.split(",") if part.strip()]
    if len(addresses) < 2:
        raise UserError("--workers needs at least two HOST:PORT addresses, the chief (task 0) first")
    if len(set(addresses)) != len(addresses):
        raise UserError("--workers lists an address twice; every worker needs its own HOST:PORT")
    if not 0 <= task_index < len(addresses):
        raise UserError(f"--task-index must be 0..{len(addresses) - 1} for {len(addresses)} workers, got {task_index}")
    return {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": task_index}}


def cluster_from_flags(workers: str | None, task_index: int | None) -> bool:
    """--workers and --task-index: this process's TF_CONFIG. True where they were given (train multi-worker)."""
    if workers is None and task_index is None:
        return False
    if workers is None or task_index is None:
        raise UserError("--workers and --task-index go together: every worker gets the same --workers list and its own index")
    os.environ["TF_CONFIG"] = json.dumps(tf_config_for(workers, task_index))
    return True


def read_tf_config() -> dict:
    """TF_CONFIG from the environment, checked so a malformed one fails in one line instead of inside TensorFlow."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise UserError("train.distribute = 'multi_worker' needs the cluster: set TF_CONFIG or pass "
                        "--workers HOST:PORT,HOST:PORT --task-index N")
    shape = 'TF_CONFIG is not {"cluster": {"worker": ["HOST:PORT", ...]}, "task": {"type": "worker", "index": N}}'
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        index = task["index"]
        if not isinstance(cluster, dict) or not all(isinstance(hosts, list) for hosts in cluster.values()):
            raise TypeError
        if isinstance(index, str) and index.isdigit():
            index = int(index)
        if not isinstance(index, int) or isinstance(index, bool):  # 1.9 is not task 1
            raise TypeError
        cluster["worker"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise UserError(shape) from None
    for address in [host for hosts in cluster.values() for host in hosts]:
        host, _, port = str(address).rpartition(":") if isinstance(address, str) else ("", "", "")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c.isspace() for c in host):
            raise UserError(f"TF_CONFIG: worker address {address!r} is not HOST:PORT")
    task["index"] = index
    if set(config["cluster"]) - {"worker", "chief"}:
        raise UserError(f"TF_CONFIG: edge-fer runs 'worker' (and 'chief') tasks only, got {sorted(config['cluster'])}")
    if task.get("type") not in config["cluster"] or not 0 <= index < len(config["cluster"][task["type"]]):
        raise UserError(f"TF_CONFIG: task {task} is not in the cluster {config['cluster']}")
    return config


def is_chief_task(tf_config: dict) -> bool:
    """TensorFlow's rule: the 'chief' task where the cluster has one, else worker 0."""
    task = tf_config["task"]
    if "chief" in tf_config["cluster"]:
        return task["type"] == "chief"
    return int(task["index"]) == 0


@dataclass
class Placement:
    """Where this process trains: its strategy (None = the default one), and whether it writes the run folder."""

    mode: str
    strategy: object = None
    task_index: int = 0
    workers: int = 1
    build_plain: Callable[[], object] | None = None  # the same architecture, outside the strategy

    @property
    def is_chief(self) -> bool:
        return self.mode != "multi_worker" or bool(self.strategy.extended.should_checkpoint)

    @property
    def multi_worker(self) -> bool:
        return self.mode == "multi_worker"


_cluster: Placement | None = None  # a process joins its cluster once


def create_placement(value, peer_timeout_s: float = 600.0) -> Placement:
    """The strategy for `train.distribute`. Call it before any other TensorFlow work: MultiWorkerMirroredStrategy
    configures the collective operations when TensorFlow starts."""
    global _cluster
    mode = distribute_mode(value)
    if mode == "none":
        return Placement(mode)
    if mode == "mirrored":
        return Placement(mode, mirrored_strategy())
    if _cluster is None:
        _cluster = join_cluster(peer_timeout_s)
    return _cluster


PEER_WAIT = """
import os, signal, socket, sys, time
parent, timeout, every = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
peers = sys.argv[4:]
started = time.monotonic()
def silent():
    missing = []
    for peer in peers:
        name, _, address = peer.partition("=")
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError:
            missing.append(name + " at " + address)
    return missing
while True:
    time.sleep(every)
    waited = time.monotonic() - started
    missing = silent()
    if waited >= timeout:
        sys.stderr.write("error: no training cluster after %.0f s: %s did not join; start the same command there "
                         "(its --task-index), or raise train.peer_timeout_s\\n" % (waited, ", ".join(missing) or "the other workers"))
        sys.stderr.flush()
        os.kill(parent, signal.SIGKILL)
        sys.exit(2)
    sys.stderr.write("waiting for the other workers (%.0f s of %.0f s): %s\\n"
                     % (waited, timeout, ", ".join(missing) or "reachable, still joining"))
    sys.stderr.flush()
"""


class PeerWait:
    """Around joining the cluster, which blocks inside TensorFlow until every worker is there (holding the GIL and
    ignoring SIGTERM): a small watcher process names every `every` seconds the workers that do not answer yet, and
    after `timeout_s` says so in one line and ends this process (exit by SIGKILL: nothing else can stop it there)."""

    def __init__(self, config: dict, timeout_s: float, every: float = 30.0):
        task = config["task"]
        self.peers = [f"{kind} {index}={address}" for kind, hosts in config["cluster"].items()
                      for index, address in enumerate(hosts) if (kind, index) != (task["type"], task["index"])]
        self.timeout_s, self.every = timeout_s, min(every, max(1.0, timeout_s / 3))
        self.watcher = None

    def __enter__(self):
        import subprocess

        # sys.stderr, not descriptor 2: the command line sends native output (descriptor 2) to its log file
        self.watcher = subprocess.Popen([sys.executable, "-c", PEER_WAIT, str(os.getpid()), str(self.timeout_s),
                                         str(self.every), *self.peers], stderr=sys.stderr)
        return self

    def __exit__(self, *exc):
        self.watcher.kill()
        self.watcher.wait()
        return False


def join_cluster(peer_timeout_s: float = 600.0) -> Placement:
    config = read_tf_config()
    import tensorflow as tf

    try:
        with PeerWait(config, peer_timeout_s):
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as error:
        raise UserError(f"could not join the training cluster: {str(error).splitlines()[0]}") from None
    task = config["task"]
    ui.log(f"worker {task['index']} of {strategy.extended._num_workers} "
           f"({'chief' if strategy.extended.should_checkpoint else 'not the chief'}): "
           f"MultiWorkerMirroredStrategy, {strategy.num_replicas_in_sync} replicas")
    return Placement("multi_worker", strategy, int(task["index"]), int(strategy.extended._num_workers))


def mirrored_strategy():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) < 2:
        ui.warn(f"train.distribute = 'mirrored' asks for several GPUs but {len(gpus)} is visible; training on one device")
        return None
    strategy = tf.distribute.MirroredStrategy()
    ui.log(f"MirroredStrategy over {strategy.num_replicas_in_sync} GPUs")
    return strategy


def all_reduce_sum(strategy, value: float) -> float:
    """The sum of `value` over the workers; also a barrier (every worker waits for every other)."""
    import tensorflow as tf

    @tf.function
    def summed(local):
        per_replica = strategy.run(lambda: tf.identity(local))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return float(summed(tf.constant(value, tf.float64)))


def barrier(placement: Placement) -> None:
    if placement.multi_worker:
        all_reduce_sum(placement.strategy, 0.0)


def check_shared_folder(placement: Placement, folder) -> None:
    """Every worker must see the chief's run folder: the chief writes a random token there and broadcasts it;
    a worker that reads another (or none) stops every worker with one line."""
    if not placement.multi_worker:
        return
    ui.log(f"waiting for all {placement.workers} workers to join (a worker that is not started yet is waited for)")
    token_path = folder / TOKEN_NAME
    token = 0
    if placement.is_chief:
        token = secrets.randbelow(2**40) + 1
        token_path.write_text(str(token))
    token = int(all_reduce_sum(placement.strategy, float(token)))  # only the chief's is non-zero; exact below 2**53
    seen = token_path.read_text().strip() if token_path.is_file() else ""
    mismatches = all_reduce_sum(placement.strategy, 0.0 if seen == str(token) else 1.0)
    if mismatches:
        raise UserError(f"{mismatches:.0f} worker(s) do not see the chief's run folder at {folder}: give every worker "
                        "the same --out on a folder they all mount (backups and the best weights are read from it)")


def forget_cluster_token(placement: Placement, folder: Path) -> None:
    """The chief, once every worker is past its last read of the token (after a collective)."""
    if placement.multi_worker and placement.is_chief:
        (folder / TOKEN_NAME).unlink(missing_ok=True)


def local_copy(placement: Placement, model):
    """`model` itself, or under MultiWorkerMirroredStrategy its weights in a model outside the strategy, which the
    chief can evaluate and save alone. Reading the weights is collective: every worker calls this."""
    if not placement.multi_worker:
        return model
    copy = placement.build_plain()
    copy_layer_weights(model, copy)
    return copy


def load_weights_file(placement: Placement, model, path: Path) -> None:
    """Keras cannot assign an HDF5 file straight into a multi-worker model's on-read (BatchNorm) variables."""
    if not placement.multi_worker:
        model.load_weights(str(path))
        return
    staging = placement.build_plain()
    staging.load_weights(str(path))
    copy_layer_weights(staging, model)


def save_weights_file(placement: Placement, model, path: Path) -> None:
    """Written whole under a temporary name, then renamed; by the chief only (every worker must call it)."""
    local = local_copy(placement, model)
    if not placement.is_chief:
        return
    from edge_fer import atomic

    with atomic.replacing(path) as temporary:
        local.save_weights(str(temporary))


def is_peer_loss(error: BaseException) -> bool:
    """A collective operation failed because another worker went away (killed, rebooted, network lost)."""
    import tensorflow as tf

    return isinstance(error, (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError,
                              tf.errors.AbortedError))


def restart_after_peer_loss(error: BaseException, max_restarts: int) -> None:
    """Re-execute this worker (a fresh TensorFlow, which re-joins the cluster and restores the last backup), at most
    `max_restarts` times; after that, one line says what to do."""
    done = int(os.environ.get(RESTARTS_VARIABLE, "0"))
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if done >= max_restarts:
        raise UserError(f"a worker left the training cluster ({first_line}); restarted {done} times already: restart "
                        "every worker with its command and training resumes from the last end-of-epoch backup")
    ui.warn(f"a worker left the training cluster ({type(error).__name__}); restarting this worker ({done + 1} of "
            f"{max_restarts}): it waits for the cluster, then resumes from the last end-of-epoch backup")
    os.environ[RESTARTS_VARIABLE] = str(done + 1)
    sys.stdout.flush()
    quiet.give_back_descriptor_2()
    os.execv(sys.executable, sys.orig_argv)
