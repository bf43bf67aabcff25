"""Fixtures of the SSH tests: a real OpenSSH server on 127.0.0.1 (tests/loopback_ssh.py)."""

import os
import sys
from pathlib import Path

import pytest

from tests.loopback_ssh import SSHD, free_port, start_sshd  # noqa: F401 (free_port: for the tests here)

@pytest.fixture(scope="module")
def loopback_ssh(tmp_path_factory):
    """An OpenSSH server on 127.0.0.1 for this module: the target-file lines that reach it (ssh, port, keys)."""
    if not Path(SSHD).exists():
        if os.environ.get("CI"):
            pytest.fail("openssh-server is missing: .ci/run installs it")
        pytest.skip("openssh-server (sshd) is not installed here")
    try:
        server, lines = start_sshd(tmp_path_factory.mktemp("ssh"))
    except RuntimeError as error:
        pytest.fail(str(error))
    yield lines
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def loopback_target(loopback_ssh, tmp_path_factory):
    target_file = tmp_path_factory.mktemp("target") / "loopback.toml"
    target_file.write_text(f'description = "loopback SSH test target"\nkind = "cpu"\n{loopback_ssh}'
                           f'remote_dir = "loopback-test"\npython = "{sys.executable}"\nthreads = 1\n')
    return target_file


