"""What a device is and what state it is in, read on the device itself: Python, runtimes, trtexec, GPU, power
mode, clocks, temperatures, and the board's input power during a timed block (tegrastats' VDD_IN rail).

This module is also sent alone as `python3 -` to check a board before anything is uploaded, so it parses and
runs on Python 3.6 (JetPack 4.6) with the standard library only: no annotations import, no numpy.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

MIN_PYTHON = (3, 8)
JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs trtexec (not on PATH)
RUNTIME_MODULES = ("tflite_runtime", "ai_edge_litert", "onnxruntime", "tensorrt", "numpy")
# /sys/module/tegra_fuse/parameters/tegra_chip_id -> the GPU's compute capability (NVIDIA's CUDA GPU list)
CHIP_CAPABILITY = {"33": "5.3", "64": "5.3", "24": "6.2", "25": "7.2", "35": "8.7"}  # 0x21 Nano/TX1, 0x18 TX2, 0x19 Xavier, 0x23 Orin
# a stand-in board (tests) keeps its /sys and /proc files under this folder
BOARD_ROOT = os.environ.get("EDGE_FER_BOARD_ROOT", "")
POWER_RAIL = re.compile(r"\bVDD_IN (\d+)(?:mW)?/(\d+)(?:mW)?")
TEMPERATURE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")


def run_text(argv, timeout=20):
    """A command's stdout + stderr and its exit code; (None, None) where it cannot run."""
    try:
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None, None
    return result.stdout.decode("utf-8", "replace"), result.returncode


def find_program(name, configured=None, fallback=None):
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    return fallback if fallback and os.path.isfile(fallback) else None


def trtexec_version(trtexec):
    """The version a trtexec reports in its banner ('&&&& RUNNING TensorRT.trtexec [TensorRT v8502]')."""
    text, _ = run_text([trtexec, "--help"], timeout=60)
    match = re.search(r"TensorRT\.trtexec \[TensorRT v(\d+)\]", text or "")
    if not match:
        return None
    number = int(match.group(1))
    if number >= 100000:
        return "%d.%d.%d" % (number // 10000, number // 100 % 100, number % 100)
    return "%d.%d.%d" % (number // 1000, number // 100 % 10, number % 100)


def read_first(paths):
    for path in paths:
        path = BOARD_ROOT + path if path.startswith(("/sys/", "/proc/")) else path
        try:
            with open(path, "rb") as handle:
                return handle.read().decode("utf-8", "replace").strip("\x00 \n")
        except OSError:
            continue
    return None


def gpu_facts():
    """A Jetson's module name and its GPU's compute capability (from the chip id); a desktop GPU's from nvidia-smi."""
    chip = read_first(["/sys/module/tegra_fuse/parameters/tegra_chip_id"])
    model = read_first(["/proc/device-tree/model"])
    if chip is not None:
        return {"gpu": model or "Jetson", "compute_capability": CHIP_CAPABILITY.get(chip.strip()), "jetson": True}
    if shutil.which("nvidia-smi"):
        text, code = run_text(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"])
        if code == 0 and text and "," in text:
            name, capability = [part.strip() for part in text.splitlines()[0].split(",")[:2]]
            return {"gpu": name, "compute_capability": capability, "jetson": False}
    return {"gpu": None, "compute_capability": None, "jetson": False}


def module_present(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def probe(trtexec_setting=None):
    """Everything the host must know before it uploads a bundle to this board."""
    facts = {"python": ".".join(str(part) for part in sys.version_info[:3]), "python_ok": sys.version_info[:2] >= MIN_PYTHON,
             "executable": sys.executable, "runtimes": [name for name in RUNTIME_MODULES if module_present(name)]}
    trtexec = find_program("trtexec", trtexec_setting, JETPACK_TRTEXEC)
    facts["trtexec"] = trtexec
    facts["trtexec_version"] = trtexec_version(trtexec) if trtexec else None
    facts.update(gpu_facts())
    facts.update(power_state())
    return facts


def power_mode():
    """`nvpmodel -q`: 'NV Power Mode: MODE_20W_6CORE' then the mode's number; None off a Jetson."""
    program = find_program("nvpmodel")
    if program is None:
        return None
    text, code = run_text([program, "-q"])
    match = re.search(r"NV Power Mode:\s*(\S+)", text or "")
    return match.group(1) if code == 0 and match else None


def clocks_locked():
    """True where jetson_clocks pinned the clocks: `jetson_clocks --show` lists each CPU and the GPU with MinFreq
    equal to MaxFreq. None where it cannot be read (no jetson_clocks, or not allowed)."""
    program = find_program("jetson_clocks")
    if program is None:
        return None
    text, code = run_text([program, "--show"])
    pairs = re.findall(r"MinFreq=(\d+) MaxFreq=(\d+)", text or "")
    if code != 0 or not pairs:
        return None
    return all(low == high for low, high in pairs)


def zone_temperatures():
    temperatures = {}
    for zone in sorted(glob.glob(BOARD_ROOT + "/sys/class/thermal/thermal_zone*")):
        zone = zone[len(BOARD_ROOT):]
        name, value = read_first([zone + "/type"]), read_first([zone + "/temp"])
        try:
            temperatures[name or os.path.basename(zone)] = round(int(value) / 1000.0, 1)
        except (TypeError, ValueError):
            continue
    return temperatures


def power_state():
    return {"power_mode": power_mode(), "clocks_locked": clocks_locked(), "temperatures_c": zone_temperatures()}


def parse_tegrastats(line):
    """One tegrastats line: the VDD_IN rail's instant power (mW) and every temperature it lists."""
    power = POWER_RAIL.search(line)
    return {"vdd_in_mw": int(power.group(1)) if power else None,
            "temperatures_c": {name: float(value) for name, value in TEMPERATURE.findall(line)}}


class PowerMonitor(object):
    """Around a timed block: the power state before and after it and, where tegrastats runs, the board's input
    power (VDD_IN) sampled every 100 ms meanwhile. Off a Jetson it records what it can and no power."""

    def __init__(self, interval_ms=100):
        self.interval_ms = interval_ms
        self.samples, self.process, self.reader = [], None, None

    def __enter__(self):
        self.before = power_state()
        program = find_program("tegrastats")
        if program is not None:
            try:
                self.process = subprocess.Popen([program, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL)
            except OSError:
                self.process = None
        if self.process is not None:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
            self._wait_for(1, 5.0)  # tegrastats is running before the block starts
        self.first = len(self.samples)  # samples from here on fall inside the block
        self.started = time.time()
        return self

    def _wait_for(self, count, seconds):
        deadline = time.time() + seconds
        while len(self.samples) < count and time.time() < deadline and self.process.poll() is None:
            time.sleep(0.01)

    def _read(self):
        for raw in iter(self.process.stdout.readline, b""):
            self.samples.append(parse_tegrastats(raw.decode("utf-8", "replace")))

    def __exit__(self, *exc):
        self.seconds = time.time() - self.started
        if self.process is not None:
            self._wait_for(self.first + 1, 3.0 * self.interval_ms / 1000.0)  # a block shorter than the interval: one sample
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.reader.join(timeout=5)
        self.after = power_state()
        return False

    def record(self, images_per_s=None):
        """What the block drew: mean VDD_IN power, and energy per image where the rate is known."""
        inside = self.samples[self.first:]
        powers = [sample["vdd_in_mw"] for sample in inside if sample["vdd_in_mw"] is not None]
        record = {"before": self.before, "after": self.after, "samples": len(inside),
                  "tegrastats": self.process is not None}
        if self.samples:
            record["temperatures_c_first"] = self.samples[0]["temperatures_c"]
            record["temperatures_c_last"] = self.samples[-1]["temperatures_c"]
        if powers:
            record["mean_power_w"] = round(sum(powers) / len(powers) / 1000.0, 3)
            if images_per_s:
                record["energy_mj_per_image"] = round(record["mean_power_w"] / images_per_s * 1000.0, 4)
        return record


def too_old(facts):
    """The one line that refuses a board whose Python cannot run the device side, or None."""
    if facts["python_ok"]:
        return None
    return ("the board's Python is %s (%s); the device runner needs Python %d.%d or newer: install python3.8 "
            "(JetPack 4.6: sudo apt install python3.8) and set python = \"python3.8\" in the target file"
            % (facts["python"], facts["executable"], MIN_PYTHON[0], MIN_PYTHON[1]))


def summary(facts):
    trtexec = "%s (TensorRT %s)" % (facts["trtexec"], facts["trtexec_version"]) if facts["trtexec"] else "none"
    gpu = "%s (compute %s)" % (facts["gpu"], facts["compute_capability"]) if facts["gpu"] else "none"
    return "board: Python %s; runtimes: %s; trtexec: %s; GPU: %s; power mode: %s" % (
        facts["python"], ", ".join(facts["runtimes"]) or "none", trtexec, gpu, facts["power_mode"] or "-")


def main(argv=None):
    """python board.py [--check] [TRTEXEC]: the facts as JSON, or (--check) one line, exit 3 where Python is too old."""
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    rest = [arg for arg in argv if arg != "--check"]
    facts = probe(rest[0] if rest and rest[0] else None)
    if not check:
        print(json.dumps(facts))
        return 0
    print(summary(facts))
    if too_old(facts):
        sys.stderr.write(too_old(facts) + "\n")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
