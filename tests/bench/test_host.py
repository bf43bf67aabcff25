import os

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


def test_another_process_spinning_during_a_block_is_seen_and_our_own_work_is_not():
    """On the real /proc/stat: a child spinning one core for the whole block reads as about one core of other
    load (BUSY); the same block spent computing in this process adds nothing to it."""
    import subprocess
    import sys
    import time

    if host.busy_seconds() is None:
        pytest.skip("no /proc/stat here")
    spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    with host.OtherLoad() as quiet:
        end = time.perf_counter() + 0.7
        while time.perf_counter() < end:  # our own work, one core
            pass
    child = subprocess.Popen([sys.executable, "-c", spin])
    time.sleep(0.2)  # the child is spinning before the block starts
    with host.OtherLoad() as loaded:
        time.sleep(1.0)
    child.wait()
    cores = os.cpu_count() or 1
    if quiet.cores > cores - 0.7:
        pytest.skip(f"other processes already keep {quiet.cores} of {cores} cores busy: no room to see one more")
    # the reading is capped at the machine's cores: a busy machine saturates before one more core shows in full
    assert loaded.cores >= min(quiet.cores + 0.6, cores - 0.05), (quiet.cores, loaded.cores)
    assert 0.6 <= loaded.cores <= os.cpu_count() and host.host_facts(1, loaded.cores)["busy"] is True
    assert host.cpu_model() and isinstance(host.cpu_model(), str)


def test_no_proc_stat_means_no_load_figure(monkeypatch):
    monkeypatch.setattr(host, "busy_seconds", lambda: None)
    with host.OtherLoad() as load:
        pass
    assert load.cores is None
