"""Targets reached over SSH: a bundle (the target-side runner, artifacts, images) goes over, the runner runs
there, JSON comes back. Key authentication and strict host-key checking only; every command is an argument
list, and the one string the remote shell sees is built with shlex.join."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

from edge_fer.artifacts import sidecar_path
from edge_fer.errors import UserError
from edge_fer.formats import suffixes
from edge_fer.targets import Target

PACKAGE = Path(__file__).resolve().parents[1]
# The device needs these modules only: numpy and the runtime do the rest (no TensorFlow).
DEVICE_MODULES = ("__init__.py", "errors.py", "registry.py", "atomic.py", "status.py", "formats.py", "artifacts.py",
                  "engine_info.py", "runtimes/__init__.py", "runtimes/base.py", "bench/__init__.py", "bench/timing.py",
                  "bench/host.py", "bench/device_runner.py", "bench/board.py", "bench/engine_job.py")


def runner_modules() -> list[str]:
    from edge_fer.runtimes import device_runtime_files

    return [*DEVICE_MODULES, *device_runtime_files()]


def run_script() -> str:
    """run.sh: benchmark every artifact in the bundle (every suffix of the format table)."""
    globs = " ".join(f"artifacts/*/*{suffix}" for suffix in suffixes())
    return f"""#!/bin/sh
# Benchmark every artifact in this bundle: ./run.sh [python3]
# Each file is in artifacts/<key>/, its key the start of its SHA-256: two files of one name stay two files.
cd "$(dirname "$0")"
PY="${{1:-python3}}"
PYTHONPATH=lib "$PY" lib/edge_fer/bench/board.py --check || exit $?
for artifact in {globs}; do
  [ -e "$artifact" ] || continue
  key=$(basename "$(dirname "$artifact")")
  images=""; [ -f "data/images-$key.npy" ] && images="--images data/images-$key.npy"
  PYTHONPATH=lib "$PY" -m edge_fer.bench.device_runner "$artifact" $images > "results-$key-$(basename "$artifact").json"
done
"""


def bundle_key(path: Path) -> str:
    """Where a file goes in a bundle: artifacts/<key>/<name>, the key from its contents (sweep points share names)."""
    from edge_fer.artifacts import file_sha256

    return file_sha256(path)[:16]


def remote_artifact(path: Path) -> str:
    return f"artifacts/{bundle_key(path)}/{path.name}"


def ssh_options(target: Target) -> list[str]:
    options = ["-p", str(target.ssh_port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if target.ssh_key:
        options += ["-i", str(Path(target.ssh_key).expanduser()), "-o", "IdentitiesOnly=yes"]
    if target.known_hosts:
        options += ["-o", f"UserKnownHostsFile={Path(target.known_hosts).expanduser()}"]
    return options


def ssh_command(target: Target, argv: list[str]) -> list[str]:
    """ssh [options] -- host 'quoted argv': every option before `--`, so neither the destination nor the command
    can be read as one; the remote shell receives exactly these arguments."""
    return ["ssh", *ssh_options(target), "--", target.ssh, shlex.join(argv)]


def build_bundle(artifacts: list[Path], images: dict[Path, Path] | None = None, extra: dict[str, bytes] | None = None) -> bytes:
    """A .tar.gz with lib/edge_fer (runner only), artifacts/<key>/ (+ metadata), data/, run.sh and `extra` files
    (the engine jobs: their ONNX sources, calibration caches and job files). `images`: artifact -> its .npy.
    A file given twice (the same contents) goes in once."""
    buffer = io.BytesIO()
    added = set()
    with tarfile.open(fileobj=buffer, mode="w:gz", dereference=True) as tar:  # file contents, never links
        for module in runner_modules():
            tar.add(PACKAGE / module, arcname=f"lib/edge_fer/{module}")
        for artifact in artifacts:
            arcname = remote_artifact(artifact)
            if arcname in added:
                continue
            added.add(arcname)
            tar.add(artifact, arcname=arcname)
            if sidecar_path(artifact).is_file():
                tar.add(sidecar_path(artifact), arcname=f"{arcname}.json")
        for artifact, image_file in (images or {}).items():
            arcname = f"data/images-{bundle_key(artifact)}.npy"
            if arcname not in added:
                added.add(arcname)
                tar.add(image_file, arcname=arcname)
        for name, data in {**(extra or {}), "run.sh": run_script().encode()}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name == "run.sh" else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def run_ssh(target: Target, argv: list[str], stdin: bytes | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(ssh_command(target, argv), input=stdin, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError("ssh is not installed on this machine; install openssh-client") from None


BUNDLES = ".edge_fer/bundles"  # under the remote user's home, where ssh starts
MARKER = ".edge_fer-bundle"  # in every folder the runner made: only those are ever replaced
UPLOAD_SCRIPT = """set -e
mkdir -p {bundles} && cd {bundles}
if [ -e {name} ] && [ ! -f {name}/{marker} ]; then
  echo "~/{bundles}/{name} exists and was not made by edge-fer; refusing to replace it" >&2; exit 3
fi
rm -rf -- {name} && mkdir -- {name} && : > {name}/{marker} && tar -xzf - -C {name}
"""


def remote_root(target: Target) -> str:
    """The bundle folder on the device, relative to the remote home: ~/.edge_fer/bundles/<remote_dir>. The
    target's remote_dir is a plain folder name (checked when the target loads), never a path the TOML picks."""
    return f"{BUNDLES}/{target.remote_dir}"


# Runs on the device with its own Python (3.6+): takes an flock on the folder's lock file, waiting up to argv[2]
# seconds, says so on stdout, and holds it until its stdin closes. The lock lives in that process, so it goes
# when the bench ends or dies (ssh's connection closes and stdin with it): no stale lock to clean up.
LOCK_SCRIPT = """import fcntl, os, sys, time
path, wait = sys.argv[1], float(sys.argv[2])
os.makedirs(os.path.dirname(path), exist_ok=True)
handle = open(path, "a")
deadline, told = time.time() + wait, False
while True:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if time.time() >= deadline:
            print("busy", flush=True)
            sys.exit(4)
        if not told:
            print("waiting", flush=True)
            told = True
        time.sleep(0.5)
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def bundle_lock(target: Target, wait_s: float, on_wait=None):
    """The target's bundle folder for one bench, held from before the upload to the last measurement: a second
    bench to the same folder waits (`on_wait()` is called once) up to `wait_s` seconds, then stops with one line.
    Without it, the second bench's upload replaced the folder the first was reading its files from."""
    lock_file = f"{remote_root(target)}.lock"
    holder = subprocess.Popen(ssh_command(target, [target.python, "-c", LOCK_SCRIPT, lock_file, str(wait_s)]),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        answer = holder.stdout.readline().strip()
        if answer == b"waiting":
            if on_wait:
                on_wait()
            answer = holder.stdout.readline().strip()
        if answer == b"busy":
            raise UserError(f"target {target.name} is busy: another bench has used ~/{remote_root(target)} on "
                            f"{target.ssh} for over {wait_s:.0f} s; wait for it to finish, or give this target its own "
                            "remote_dir")
        if answer != b"locked":
            holder.kill()
            message = holder.communicate(timeout=30)[1].decode(errors="replace").strip()
            raise UserError(f"cannot reach {target.ssh} to lock ~/{lock_file}: {message[-300:]}")
        yield
    finally:
        if holder.poll() is None:
            try:
                holder.communicate(timeout=30)  # closes stdin: the device lets the lock go
            except subprocess.TimeoutExpired:
                holder.kill()
                holder.communicate()


def upload_bundle(target: Target, bundle: bytes) -> str:
    script = UPLOAD_SCRIPT.format(bundles=BUNDLES, name=shlex.quote(target.remote_dir), marker=MARKER)
    result = run_ssh(target, ["sh", "-c", script], stdin=bundle)
    if result.returncode != 0:
        raise UserError(f"cannot copy the bundle to {target.ssh}: {result.stderr.decode(errors='replace').strip()[-300:]}")
    return remote_root(target)


def run_device_module(target: Target, module: str, args: list[str]) -> dict:
    """`python -m edge_fer.bench.<module> ARGS` with the uploaded bundle's code; its last line of JSON, or the error.
    Paths in ARGS are the bundle's (remote_root)."""
    result = run_ssh(target, ["env", f"PYTHONPATH={remote_root(target)}/lib", target.python, "-m", f"edge_fer.bench.{module}",
                              *args])
    output = result.stdout.decode(errors="replace").strip().splitlines()
    try:
        return json.loads(output[-1])
    except (IndexError, ValueError):
        return {"error": f"no answer from {target.ssh}: {result.stderr.decode(errors='replace').strip()[-300:]}"}


def run_remote_artifact(target: Target, artifact: Path, runner_args: list[str], with_images: bool) -> dict:
    root = remote_root(target)
    images = ["--images", f"{root}/data/images-{bundle_key(artifact)}.npy"] if with_images else []
    return run_device_module(target, "device_runner", [f"{root}/{remote_artifact(artifact)}", *runner_args, *images])
