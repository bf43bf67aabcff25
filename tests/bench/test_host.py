import os
from pathlib import Path

import pytest

from edge_fer.bench import host


def test_other_load_is_the_machine_busy_time_minus_our_own(monkeypatch):
    machine = iter([100.0, 103.0])  # 3 busy CPU-seconds on the machine during the block
    own = iter([10.0, 11.0])  # 1 of them ours
    clock = iter([50.0, 52.0])  # over 2 s of wall time
    monkeypatch.setattr(host, "busy_seconds", lambda: next(machine))
    monkeypatch.setattr(host, "own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(host.time, "perf_counter", lambda: next(clock))
    with host.OtherLoad() as load:
        pass
    assert load.cores == pytest.approx(1.0)
    facts = host.host_facts(2, load.cores)
    assert facts["busy"] is True and facts["threads"] == 2 and facts["logical_cpus"] == os.cpu_count()
    assert host.host_facts(2, 0.1)["busy"] is False and host.host_facts(2, None)["busy"] is False


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc/<pid>/stat (the fields after the command's closing paren)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_another_process_spinning_during_a_block_is_seen_and_our_own_work_is_not():
    """On the real /proc/stat: whatever CPU a spinning child got during the block is counted as other load; the
    CPU this process spent computing is not. Both bounds hold however busy the machine is (CI shares it)."""
    import subprocess
    import sys
    import time

    if host.busy_seconds() is None:
        pytest.skip("no /proc/stat here")
    cores = os.cpu_count() or 1
    own_before = host.own_cpu_seconds()
    with host.OtherLoad() as quiet:
        started = time.perf_counter()
        while time.perf_counter() < started + 0.7:  # our own work, one core
            pass
    own_cores = (host.own_cpu_seconds() - own_before) / (time.perf_counter() - started)
    tick_slack = 0.1  # /proc counts in 10 ms ticks
    assert quiet.cores <= cores - own_cores + tick_slack, (quiet.cores, own_cores)

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # the child is spinning before the block starts
        child_before, started = _process_cpu_seconds(child.pid), time.perf_counter()
        with host.OtherLoad() as loaded:
            time.sleep(1.0)
        child_cores = (_process_cpu_seconds(child.pid) - child_before) / (time.perf_counter() - started)
    finally:
        child.kill()
        child.wait()
    assert child_cores > 0.2, f"the child got only {child_cores:.2f} cores: the check below would prove nothing"
    assert child_cores - tick_slack <= loaded.cores <= cores, (child_cores, loaded.cores)
    assert host.host_facts(1, loaded.cores)["busy"] is (loaded.cores > host.BUSY_CORES)
    assert host.cpu_model() and isinstance(host.cpu_model(), str)


def test_no_proc_stat_means_no_load_figure(monkeypatch):
    monkeypatch.setattr(host, "busy_seconds", lambda: None)
    with host.OtherLoad() as load:
        pass
    assert load.cores is None
