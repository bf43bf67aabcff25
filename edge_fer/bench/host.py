"""What the measuring host is and how busy it was while an artifact was timed. Runs on the device (it is in the
remote bundle): standard library only, Linux /proc where it exists."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

BUSY_CORES = 0.25  # other processes' CPU use during timing, in cores, above which a latency is marked unreliable


def cpu_model() -> str:
    """'AMD EPYC 7B13', or a board's model (Jetsons name themselves in the device tree), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return platform.processor() or platform.machine() or "unknown"


def cpu_governor() -> str | None:
    """The frequency governor of cpu0 ('performance', 'powersave', ...), None where the kernel does not say (VMs)."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() or None
    except OSError:
        return None


def busy_seconds() -> float | None:
    """CPU-seconds every core of the machine spent busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class OtherLoad:
    """Around a timed block: how many cores other processes kept busy meanwhile (machine busy time minus ours)."""

    def __enter__(self):
        self.started, self.machine, self.own = time.perf_counter(), busy_seconds(), own_cpu_seconds()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.started
        machine = busy_seconds()
        if self.machine is None or machine is None or wall <= 0:
            self.cores = None
        else:
            others = (machine - self.machine) - (own_cpu_seconds() - self.own)
            # /proc/stat counts in 10 ms ticks, so a short block can read above the machine's cores
            self.cores = round(min(max(0.0, others) / wall, float(os.cpu_count() or 1)), 3)
        return False


def host_facts(threads: int | None, other_cores: float | None) -> dict:
    load_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads, "governor": cpu_governor(),
            "other_load_cores": other_cores, "loadavg_1m": load_1m,
            "busy": other_cores is not None and other_cores > BUSY_CORES}
