"""The report's tables: one row per artifact (COLUMNS), with the cells that need explaining (host load, MAC share,
the roofline estimate) and the notes under each table."""

from __future__ import annotations

from pathlib import Path

from edge_fer.bench.host import BUSY_CORES
from edge_fer.bench.peak import mac_share
from edge_fer.status import PASSED
from edge_fer.targets import load_target

ACCURACY_COLUMNS = ["format", "precision", "size MB", "valid accuracy", "test accuracy", "95% interval", "macro-F1",
                    "ECE", "KL to votes", "flips vs float", "agreement"]
SPEED_COLUMNS = ["bench run", "p50 ms", "p90 ms", "round p50s ms", "images/s", "mJ/image", "timed by", "other load", "MAC share",
                 "roofline est. ms"]
COLUMNS = ACCURACY_COLUMNS + SPEED_COLUMNS  # one row per artifact; the report shows it as two tables


def visible(columns: list[str], rows: list[list]) -> tuple[list[str], list[list]]:
    """The columns (and cells) to show: a column empty in every row is left out (the first, the names, stays)."""
    keep = [index for index, name in enumerate(columns) if index == 0 or any(row[index] is not None for row in rows)]
    return [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]


def split_tables(rows: list[list]) -> list[tuple[list[str], list[list]]]:
    """The accuracy table and the speed table of full COLUMNS rows (each named by its first column), each with its
    empty columns left out: two tables that fit a page where one would scroll sideways."""
    cut = len(ACCURACY_COLUMNS)
    return [visible(ACCURACY_COLUMNS, [row[:cut] for row in rows]),
            visible([COLUMNS[0], *SPEED_COLUMNS], [[row[0], *row[cut:]] for row in rows])]


def interval_cell(accuracy: float | None, count: int | None) -> str | None:
    """The 95% Wilson interval of an accuracy over `count` images, as 0.808-0.835 (None where either is missing)."""
    from edge_fer.evaluate import wilson_interval

    interval = wilson_interval(accuracy, count)
    return f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else None


def accuracy_cells(row: dict) -> list:
    """The validation accuracy (what artifacts are chosen on), the test accuracy as 0.8218 (four decimals,
    everywhere) and its 95% Wilson interval over the scored images."""
    accuracy, metrics = row.get("accuracy"), row.get("metrics") or {}
    valid = (metrics.get("scores_valid") or {}).get("accuracy")
    return [None if valid is None else f"{valid:.4f}", None if accuracy is None else f"{accuracy:.4f}",
            interval_cell(accuracy, (metrics.get("scores") or {}).get("count"))]


def flips(row: dict, reference: dict, scores: str = "scores") -> float | None:
    """The share of scored images whose top class differs between two rows' files (from their stored predictions);
    None where either lacks them or they scored different image counts."""
    from edge_fer.evaluate import unpack_classes

    mine, theirs = (((r.get("metrics") or {}).get(scores)) or {} for r in (row, reference))
    if not mine.get("predicted") or not theirs.get("predicted") or mine.get("count") != theirs.get("count"):
        return None
    count = mine["count"]
    return float((unpack_classes(mine["predicted"], count) != unpack_classes(theirs["predicted"], count)).mean())


def float_reference(row: dict, rows: list[dict]) -> dict | None:
    """The fp32 file benched beside `row`: same folder, same run, passed (the first by format name)."""
    folder = str(Path(row.get("artifact") or "").parent)
    same = [other for other in rows if other.get("precision") == "fp32" and other.get("status") == PASSED
            and other.get("run_id") == row.get("run_id") and str(Path(other.get("artifact") or "").parent) == folder]
    return min(same, key=lambda other: other.get("format") or "", default=None)


def flips_cell(row: dict, rows: list[dict]) -> str | None:
    reference = float_reference(row, rows)
    value = None if reference is None else flips(row, reference)
    return None if value is None else f"{value:.4f}"


def precision_cell(row: dict) -> str | None:
    """The precision as the format table says it honestly (the grey int8 file keeps its stem in fp32)."""
    from edge_fer.formats import find_format

    found = find_format(row.get("format"))
    return (found and found.shown_precision) or row.get("precision")


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

    def fixed(value, digits):  # one format per column: 1.20 and 1.28, not 1.2 and 1.28
        return None if value is None else f"{float(value):.{digits}f}"

    several_runs = len({row.get("run_id") for row in rows}) > 1  # timings compare only within one run: say which
    return [[row.get("label") or row["format"], precision_cell(row), fixed(row["size_bytes"] / 1e6, 2) if row.get("size_bytes") else None,
             *accuracy_cells(row), fixed(row.get("macro_f1"), 4),
             fixed(((row.get("metrics") or {}).get("scores") or {}).get("ece"), 4),
             fixed(((row.get("metrics") or {}).get("scores") or {}).get("vote_kl"), 4), flips_cell(row, rows),
             fixed(row.get("agreement"), 3),
             f"{row.get('run_id')} ({str(row.get('created'))[:10]})" if several_runs else None, number(row.get("p50_ms")), number(row.get("p90_ms")), round_spread(row), number(row.get("images_per_s"), 1),
             energy_cell(row), timed_by_cell(row), load_cell(host_of(row)), number(mac_share(row, rates or {}), 3), number(roofline_ms(row, target), 4)]
            if row["status"] == PASSED else
            [row.get("label") or row["format"], precision_cell(row), *[None] * (len(COLUMNS) - 3), f"failed: {row.get('reason')}"]
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
            "*MAC share* is each artifact's MACs / p50 as a share of the peak of its runtime and precision. A share "
            "above 1 is possible: the peak is what wide 1×1 convolutions reach here, a measured reference, not the "
            "hardware's limit, and a model of small layers that stay in cache can beat it per MAC.")


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
    machines = sorted({f"{h['cpu']} ({h['logical_cpus']} logical CPUs), {h['threads'] or 'default'} threads"
                       + (f", governor {h['governor']}" if h.get("governor") else "") for h in hosts})
    busy = sum(1 for h in hosts if h.get("busy"))
    note = f"Latency measured on {'; '.join(machines)}. *other load*: cores other processes kept busy during the timing (the most of its rounds; BUSY if any round was)."
    if busy:
        note += (f" **{busy} of {len(hosts)} rows were timed on a BUSY host** (other load above "
                 f"{BUSY_CORES} cores): their latencies are upper bounds; rerun the bench on a quiet machine.")
    return note


def markdown_table(columns: list[str], rows: list[list], left: tuple[int, ...] = ()) -> str:
    """A Markdown table; the columns numbered in `left` are aligned left (names), the others as the page says."""
    cell = lambda value: "-" if value is None else str(value).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "".join(":---|" if i in left else "---|" for i in range(len(columns)))]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def dataset_note(section: dict) -> str:
    names = ", ".join(section["datasets"]) or "no dataset (latency only)"
    return f"Scored on: {names}" + (" — **SYNTHETIC** data, not real faces." if section["synthetic"] else ".")


ESTIMATE_NOTE = ("*roofline est. ms* is an ESTIMATE from the target's published peak (see targets/*.toml), not a "
                 "measurement: max(2·MACs / peak ops, artifact bytes / peak bandwidth).")


PAIRED_COLUMNS = ["against", "valid diff", "valid p", "test diff", "test p", "on test"]


def paired_rows(rows: list[dict], most: int = 6) -> dict | None:
    """The most accurate artifact (on validation where every row has it) against the next `most`, each pair
    tested on the same images by McNemar's exact test: whether a lead is more than noise. None with one row or
    without per-image records."""
    from edge_fer.bench.pick import chosen_on, paired, paired_verdict, ranked

    timed = [row for row in rows if row.get("status") == PASSED and row.get("p50_ms") and row.get("accuracy") is not None]
    split = chosen_on(timed)
    order = ranked(timed, split)
    tests = [(row, paired(order[0], row, "valid"), paired(order[0], row, "test")) for row in order[1:most + 1]]
    if not tests or tests[0][2] is None:
        return None
    cells = lambda test: [None, None] if test is None else [f"{test['difference']:+.4f}", f"{test['p']:.3g}"]  # noqa: E731
    table = [[row.get("label") or row["format"], *cells(valid), *cells(test), paired_verdict(test)]
             for row, valid, test in tests]
    return {"leader": order[0].get("label") or order[0]["format"], "chosen_on": split, "rows": table}
