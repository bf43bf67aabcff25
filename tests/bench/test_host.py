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


def test_a_real_block_gives_a_bounded_load_and_a_cpu_name():
    with host.OtherLoad() as load:
        sum(i * i for i in range(200_000))  # our own work is not "other" load
    assert load.cores is None or 0.0 <= load.cores <= os.cpu_count()
    assert host.cpu_model() and isinstance(host.cpu_model(), str)


def test_no_proc_stat_means_no_load_figure(monkeypatch):
    monkeypatch.setattr(host, "busy_seconds", lambda: None)
    with host.OtherLoad() as load:
        pass
    assert load.cores is None
