"""The SSH path for real: an OpenSSH server on 127.0.0.1 with a throwaway host key and user key."""

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edge_fer.bench import store
from edge_fer.bench.remote import MARKER, build_bundle, bundle_lock, remote_artifact, remote_root, ssh_command
from edge_fer.cli import main
from edge_fer.errors import UserError
from edge_fer.targets import Target, load_target
from tests.loopback_ssh import free_port


def test_bench_over_ssh(loopback_target, exported, tmp_path, capsys):
    _, results = exported
    artifacts = [results["tflite-int8"]["path"], results["onnx-fp32"]["path"]]
    database = tmp_path / "results.sqlite"
    code = main(["bench", *artifacts, "--target", str(loopback_target), "--store", str(database),
                 "--min-queries", "10", "--min-duration", "0.2", "--warmup", "2", "--offline-batch", "4",
                 "--dataset", "synthetic", "-o", "train_count=7", "-o", "valid_count=7", "-o", "test_count=21"])
    assert code == 0, capsys.readouterr()
    rows = store.fetch(database)
    assert [row["status"] for row in rows] == ["passed", "passed"]
    assert all(row["target"] == "loopback" and row["p50_ms"] > 0 and row["accuracy"] is not None for row in rows)
    remote = Path.home() / remote_root(load_target(str(loopback_target)))
    assert (remote / "lib" / "edge_fer" / "bench" / "device_runner.py").is_file() and (remote / MARKER).is_file()
    assert (remote / remote_artifact(Path(artifacts[0]))).is_file()  # under its content key


@pytest.mark.hostile("ssh")
def test_unknown_host_key_is_refused(loopback_target, exported, tmp_path, capsys):
    _, results = exported
    text = loopback_target.read_text()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text("")
    target_file = tmp_path / "strict.toml"
    known_line = next(line for line in text.splitlines() if line.startswith("known_hosts"))
    target_file.write_text(text.replace(known_line, f'known_hosts = "{wrong}"'))
    code = main(["bench", results["onnx-fp32"]["path"], "--target", str(target_file), "--store", str(tmp_path / "s.sqlite")])
    assert code == 2
    assert "Host key verification failed" in capsys.readouterr().err


@pytest.mark.hostile("ssh")
def test_the_remote_command_is_one_quoted_string():
    target = Target(name="t", access="ssh", ssh="me@host", ssh_port=2222)
    command = ssh_command(target, ["echo", "a; rm -rf /", "$(whoami)"])
    assert command[:3] == ["ssh", "-p", "2222"] and "StrictHostKeyChecking=yes" in command
    assert command[-1] == "echo 'a; rm -rf /' '$(whoami)'" and command[-3:-1] == ["--", "me@host"]


@pytest.mark.hostile("ssh")
@pytest.mark.parametrize("line,message", [
    ('ssh = "-V"', "is not user@host"),
    ('ssh = "me@host -oProxyCommand=touch"', "is not user@host"),
    ('ssh = "-oProxyCommand=x@host"', "is not user@host"),
    ('ssh = "me@host"\nremote_dir = "/etc"', "must be a plain folder name"),
    ('ssh = "me@host"\nremote_dir = "../.."', "must be a plain folder name"),
    ('ssh = "me@host"\nssh_port = 0', "ssh_port must be from 1 to 65535"),
    ('ssh = "me@host"\npython = "-c import os"', "must be a program name or path"),
    ('ssh = "me@host"\nbusy_wait_s = nan', "busy_wait_s must be a finite number"),
    ('ssh = "me@host"\nbusy_wait_s = -1', "busy_wait_s must be from 0 to 86400"),
])
def test_hostile_ssh_settings_are_refused_before_anything_runs(tmp_path, line, message):
    path = tmp_path / "hostile.toml"
    path.write_text(f'access = "ssh"\n{line}\n')
    with pytest.raises(UserError, match=message):
        load_target(str(path))


@pytest.mark.hostile("ssh")
def test_a_remote_folder_not_made_by_edge_fer_is_never_replaced(loopback_target, exported, tmp_path, capsys):
    _, results = exported
    foreign = Path.home() / ".edge_fer" / "bundles" / "someone-elses"
    foreign.mkdir(parents=True, exist_ok=True)
    (foreign / "precious.txt").write_text("keep me")
    target_file = tmp_path / "foreign.toml"
    target_file.write_text(re.sub(r'remote_dir = "[^"]*"', 'remote_dir = "someone-elses"', loopback_target.read_text()))
    try:
        code = main(["bench", results["onnx-fp32"]["path"], "--target", str(target_file), "--store", str(tmp_path / "s.sqlite")])
        assert code == 2 and "was not made by edge-fer; refusing to replace it" in capsys.readouterr().err
        assert (foreign / "precious.txt").read_text() == "keep me"
    finally:
        shutil.rmtree(foreign)


def test_bundle_runs_by_hand(exported, tmp_path, capsys):
    _, results = exported
    out = tmp_path / "bundle.tar.gz"
    assert main(["bundle", "--target", "jetson-orin-nano", results["tflite-int8"]["path"], "--out", str(out)]) == 0
    with tarfile.open(out) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert "run.sh" in names and "lib/edge_fer/runtimes/litert.py" in names
    assert not any("train" in name or "models" in name for name in names)  # no TensorFlow-side code travels
    subprocess.run(["sh", str(tmp_path / "unpacked" / "run.sh"), sys.executable], check=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": ""})
    result_files = list((tmp_path / "unpacked").glob("results-*.json"))
    assert len(result_files) == 1 and '"single_stream"' in result_files[0].read_text()
    assert build_bundle([]).startswith(b"\x1f\x8b")


@pytest.mark.hostile("paths")
def test_bundles_store_contents_not_links(exported, tmp_path):
    _, results = exported
    link = tmp_path / "model-onnx-fp32.onnx"
    link.symlink_to(results["onnx-fp32"]["path"])
    with tarfile.open(fileobj=__import__("io").BytesIO(build_bundle([link]))) as tar:
        member = tar.getmember(remote_artifact(link))
        assert member.isfile() and not member.issym() and member.size == Path(results["onnx-fp32"]["path"]).stat().st_size


def test_a_fleet_bench_measures_every_reachable_target_and_fails_the_unreachable_one(loopback_target, exported, tmp_path, capsys):
    _, results = exported
    artifacts = [results["tflite-int8"]["path"], results["onnx-fp32"]["path"]]
    text = loopback_target.read_text()
    targets = []
    for name in ("lab-a", "lab-b"):
        targets.append(tmp_path / f"{name}.toml")
        targets[-1].write_text(re.sub(r'remote_dir = "[^"]*"', f'remote_dir = "fleet-{name}"', text))
    closed = tmp_path / "lab-down.toml"  # a port nothing listens on: connection refused
    port = text.split("ssh_port = ")[1].split("\n")[0]
    closed.write_text(text.replace(f"ssh_port = {port}", f"ssh_port = {free_port()}"))
    database = tmp_path / "fleet.sqlite"
    code = main(["bench", *artifacts, *[arg for t in (*targets, closed) for arg in ("--target", str(t))],
                 "--store", str(database), "--min-queries", "10", "--min-duration", "0.2", "--warmup", "2",
                 "--offline-batch", "4", "--json"])
    assert code == 1  # a failed row makes the exit non-zero
    rows = store.fetch(database)
    by_target = {name: [row for row in rows if row["target"] == name] for name in ("lab-a", "lab-b", "lab-down")}
    assert all(len(found) == 2 for found in by_target.values()), rows
    assert all(row["status"] == "passed" and row["p50_ms"] > 0 for name in ("lab-a", "lab-b") for row in by_target[name])
    assert all(row["status"] == "failed" and "target failed" in row["reason"] for row in by_target["lab-down"])
    assert len({row["run_id"] for row in rows}) == 1  # one store, one run
    for target in targets:
        shutil.rmtree(Path.home() / remote_root(load_target(str(target))), ignore_errors=True)


def two_same_named_files(tmp_path: Path) -> list[Path]:
    """Two different models under one name, as every sweep point's export folder has them: 64 px and 112 px."""
    ferplus = Path(__file__).resolve().parents[2] / "benchmarks" / "ferplus"
    files = []
    for point, source in (("point-64", ferplus / "vote-64" / "model-tflite-int8-qat.tflite"),
                          ("point-112", ferplus / "vote" / "model-tflite-int8-qat.tflite")):
        folder = tmp_path / point / "export"
        folder.mkdir(parents=True)
        shutil.copy(source, folder / source.name)
        shutil.copy(f"{source}.json", folder / f"{source.name}.json")
        files.append(folder / source.name)
    return files


@pytest.mark.hostile("data lost or wrong")
def test_same_named_files_on_an_ssh_target_each_get_their_own_numbers(loopback_target, tmp_path, capsys):
    """Before, the second file replaced the first on the target and both rows held its numbers."""
    files = two_same_named_files(tmp_path)
    with tarfile.open(fileobj=__import__("io").BytesIO(build_bundle(files))) as tar:
        names = [name for name in tar.getnames() if name.endswith(".tflite")]
    assert len(names) == len(set(names)) == 2  # no duplicate tar entries
    timing = ["--min-queries", "50", "--min-duration", "0.5", "--warmup", "5", "--offline-batch", "1", "--threads", "1", "--json"]
    p50 = {}
    for where, target in (("remote", str(loopback_target)), ("local", "host-cpu")):
        database = tmp_path / f"{where}.sqlite"
        assert main(["bench", *map(str, files), "--target", target, "--store", str(database), *timing]) == 0
        capsys.readouterr()
        p50[where] = {Path(row["artifact"]).parts[-3]: row["p50_ms"] for row in store.fetch(database)}
    remote, local = p50["remote"], p50["local"]
    assert remote["point-112"] > 1.5 * remote["point-64"]  # 112 px costs about three times 64 px
    for point in remote:
        assert 0.5 < remote[point] / local[point] < 2.0, (remote, local)  # each row is its own file's latency


@pytest.mark.hostile("data lost or wrong")
def test_a_bench_holds_its_bundle_folder_and_a_second_one_waits_then_stops(loopback_target, exported, tmp_path, capsys):
    """Two benches to one folder: the second one's upload used to replace the files the first was reading."""
    _, results = exported
    target = load_target(str(loopback_target))
    impatient = tmp_path / "impatient.toml"
    impatient.write_text(loopback_target.read_text() + "busy_wait_s = 1\n")
    waited = []
    with bundle_lock(target, 5):
        with pytest.raises(UserError, match="is busy"), bundle_lock(target, 1, lambda: waited.append("waited")):
            pass
        code = main(["bench", results["onnx-fp32"]["path"], "--target", str(impatient), "--store", str(tmp_path / "s.sqlite")])
        err = capsys.readouterr().err
        assert code == 2 and "is busy" in err and "Traceback" not in err
    assert waited == ["waited"]
    with bundle_lock(target, 0, lambda: waited.append("again")):  # let go: the next one takes it at once
        pass
    assert waited == ["waited"]


def test_the_lock_is_released_when_the_bench_holding_it_dies(loopback_target):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom edge_fer.bench.remote import bundle_lock\nfrom edge_fer.targets import load_target\n"
        "with bundle_lock(load_target(sys.argv[1]), 5):\n    print('held', flush=True)\n    time.sleep(600)\n"),
        str(loopback_target)], stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout.readline().strip() == b"held"
        holder.kill()  # no clean-up runs: only the ssh connection closing lets the lock go
        with bundle_lock(load_target(str(loopback_target)), 30):
            pass
    finally:
        holder.kill()
        holder.wait()
