"""The report's tables: one row per artifact (COLUMNS), with the cells that need explaining (host load, MAC share,
the roofline estimate) and the notes under each table."""

from __future__ import annotations

from edge_fer.bench.host import BUSY_CORES
from edge_fer.bench.peak import mac_share
from edge_fer.status import PASSED
from edge_fer.targets import load_target


COLUMNS = ["format", "precision", "size MB", "accuracy", "macro-F1", "agreement", "p50 ms", "p90 ms", "round p50s ms",
           "images/s", "mJ/image", "timed by", "other load", "MAC share", "roofline est. ms"]

# shown only where some row has them: energy (a board with tegrastats) and who timed the row (trtexec or our runner)
OPTIONAL_COLUMNS = ("mJ/image", "timed by")

def visible(columns: list[str], rows: list[list]) -> tuple[list[str], list[list]]:
    """The columns (and cells) to show: an optional column that is empty in every row is left out."""
    keep = [index for index, name in enumerate(columns)
            if name not in OPTIONAL_COLUMNS or any(row[index] is not None for row in rows)]
    return [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]

def energy_cell(row: dict) -> float | None:
    energy = ((row.get("metrics") or {}).get("power") or {}).get("energy_mj_per_image")
    return None if energy is None else round(float(energy), 3)

def timed_by_cell(row: dict) -> str | None:
    """Marked where trtexec timed the row (its own warm-up, duration and statistics), not our runner."""
    return (row.get("metrics") or {}).get("timed_by")

def roofline_ms(row: dict, target_name: str) -> float | None:
    """An estimate, not a measurement: max(compute at the published peak, weights read once at peak bandwidth)."""
    try:
        device = load_target(target_name).device
    except Exception:
        return None
    metrics = row.get("metrics") or {}
    macs = metrics.get("macs") or row.get("macs")
    if (metrics.get("engine") or {}).get("dla_core") is not None:
        return None  # a DLA engine: no published peak for one DLA core
    # a Jetson's module TOPS include its DLAs; a GPU engine is held to the GPU's own peak, where one is published
    module_only = device.dla_cores > 0 and device.peak_int8_tops_gpu is None
    peak_int8 = device.peak_int8_tops_gpu or (None if module_only else device.peak_int8_tops)
    peak_tera = peak_int8 if row.get("precision") == "int8" else device.peak_fp16_tflops
    if not macs or not peak_tera or not device.memory_bandwidth_gbs or not row.get("size_bytes"):
        return None
    compute_s = 2 * macs / (peak_tera * 1e12)
    memory_s = row["size_bytes"] / (device.memory_bandwidth_gbs * 1e9)
    return 1000 * max(compute_s, memory_s)

def table_rows(rows: list[dict], target: str, rates: dict | None = None) -> list[list]:
    """One line per row; MAC share = the artifact's MACs / p50 over the host's peak (bench --peak) for its runtime
    and precision, where a peak was measured."""
    def number(value, digits=3):
        return None if value is None else round(float(value), digits)

    return [[row.get("label") or row["format"], row.get("precision"), number((row.get("size_bytes") or 0) / 1e6, 2) if row.get("size_bytes") else None,
             number(row.get("accuracy"), 4), number(row.get("macro_f1"), 4), number(row.get("agreement"), 4),
             number(row.get("p50_ms")), number(row.get("p90_ms")), round_spread(row), number(row.get("images_per_s"), 1),
             energy_cell(row), timed_by_cell(row), load_cell(host_of(row)), number(mac_share(row, rates or {}), 3), number(roofline_ms(row, target), 4)]
            if row["status"] == PASSED else
            [row.get("label") or row["format"], row.get("precision"), *[None] * (len(COLUMNS) - 3), f"failed: {row.get('reason')}"]
            for row in rows]

def round_spread(row: dict) -> str | None:
    """The lowest and highest p50 of the row's interleaved rounds (bench --rounds): how far the host drifted."""
    rounds = ((row.get("metrics") or {}).get("single_stream") or {}).get("round_p50_ms")
    return f"{min(rounds):.3f}-{max(rounds):.3f}" if rounds and len(rounds) > 1 else None

def peak_note(target: str, rates: dict) -> str:
    peaks = [f"{name} {rate / 1e9:.1f} GMAC/s" for (where, name), rate in sorted(rates.items()) if where == target]
    if not peaks:
        return ""
    return (f"Host peak (`edge-fer bench --peak`: 1×1 convolutions, same runner and threads): {', '.join(peaks)}. "
            "*MAC share* is each artifact's MACs / p50 as a share of the peak of its runtime and precision.")

def host_of(row: dict) -> dict | None:
    return (row.get("metrics") or {}).get("host")

def load_cell(host: dict | None) -> str | None:
    """Cores other processes kept busy while this row was timed; BUSY marks a latency to distrust."""
    if not host or host.get("other_load_cores") is None:
        return None
    return f"{'BUSY ' if host.get('busy') else ''}{host['other_load_cores']:.2f}"

def host_note(rows: list[dict]) -> str:
    hosts = [host_of(row) for row in rows if row.get("status") == PASSED and host_of(row)]
    if not hosts:
        return ""
    machines = sorted({f"{h['cpu']} ({h['logical_cpus']} logical CPUs), {h['threads'] or 'default'} threads" for h in hosts})
    busy = sum(1 for h in hosts if h.get("busy"))
    note = f"Latency measured on {'; '.join(machines)}. *other load*: cores other processes kept busy during the timing."
    if busy:
        note += (f" **{busy} of {len(hosts)} rows were timed on a BUSY host** (other load above "
                 f"{BUSY_CORES} cores): their latencies are upper bounds; rerun the bench on a quiet machine.")
    return note

def markdown_table(columns: list[str], rows: list[list]) -> str:
    cell = lambda value: "-" if value is None else str(value).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])

def dataset_note(section: dict) -> str:
    names = ", ".join(section["datasets"]) or "no dataset (latency only)"
    return f"Scored on: {names}" + (" — **SYNTHETIC** data, not real faces." if section["synthetic"] else ".")

ESTIMATE_NOTE = ("*roofline est. ms* is an ESTIMATE from the target's published peak (see targets/*.toml), not a "
                 "measurement: max(2·MACs / peak ops, artifact bytes / peak bandwidth).")
