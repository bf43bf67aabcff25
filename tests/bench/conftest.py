"""Fixtures of the SSH tests: a real OpenSSH server on 127.0.0.1 with a throwaway host key and user key."""

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def loopback_ssh(tmp_path_factory):
    """An OpenSSH server on 127.0.0.1 for this module: the target-file lines that reach it (ssh, port, keys)."""
    if not Path(SSHD).exists():
        if os.environ.get("CI"):
            pytest.fail("openssh-server is missing: .ci/run installs it")
        pytest.skip("openssh-server (sshd) is not installed here")
    folder = tmp_path_factory.mktemp("ssh")
    os.chmod(folder, 0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
                      f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\n"
                      "PermitRootLogin prohibit-password\n")
    Path("/run/sshd").mkdir(exist_ok=True) if os.geteuid() == 0 else None
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"sshd did not start: {server.stderr.read().decode()[-500:]}")
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    yield (f'access = "ssh"\nssh = "{getpass.getuser()}@127.0.0.1"\nssh_port = {port}\n'
           f'ssh_key = "{folder / "client_key"}"\nknown_hosts = "{folder / "known_hosts"}"\n')
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def loopback_target(loopback_ssh, tmp_path_factory):
    target_file = tmp_path_factory.mktemp("target") / "loopback.toml"
    target_file.write_text(f'description = "loopback SSH test target"\nkind = "cpu"\n{loopback_ssh}'
                           f'remote_dir = "loopback-test"\npython = "{sys.executable}"\nthreads = 1\n')
    return target_file


