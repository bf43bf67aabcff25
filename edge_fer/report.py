"""`edge-fer report`: Markdown and HTML (plus PNG plots) from the results store, and the same tables in the
terminal. Per target: the latest measurement of each artifact; below, every run, so runs merge and compare."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge_fer.bench import store
from edge_fer.errors import UserError
from edge_fer.bench.host import BUSY_CORES
from edge_fer.bench.peak import PEAK_VARIANT, mac_share, peak_rates
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


SCORE_FIELDS = ("accuracy", "macro_f1", "dataset", "synthetic")


def latest_per_artifact(rows: list[dict]) -> dict[str, list[dict]]:
    """target -> the newest row for each (artifact path, format): a file exported again to the same path replaces
    the older one. Accuracy belongs to the file's contents, not the run: a newer latency-only row keeps the scores
    of the newest scored row with the same artifact hash."""
    latest: dict[tuple, dict] = {}
    scored: dict[tuple, dict] = {}
    for row in rows:
        if row.get("variant") == PEAK_VARIANT:
            continue  # the host's peak, not an artifact
        latest[(row["target"], row["artifact"], row["format"])] = row
        if row.get("accuracy") is not None:
            scored[content_key(row)] = row
    for row in latest.values():
        source = scored.get(content_key(row))
        if row.get("accuracy") is None and source is not None:
            row.update({field: source[field] for field in SCORE_FIELDS})
            row["metrics"] = {**(row.get("metrics") or {}), "scores": (source.get("metrics") or {}).get("scores")}
    by_target: dict[str, list[dict]] = {}
    for (target, _, _), row in sorted(latest.items(), key=lambda item: (item[0][0], item[1]["format"] or "")):
        by_target.setdefault(target, []).append(row)
    return by_target


def content_key(row: dict) -> tuple:
    return row["target"], row.get("artifact_sha256") or row["artifact"], row["format"]


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
            if row["status"] == "passed" else
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
    hosts = [host_of(row) for row in rows if row.get("status") == "passed" and host_of(row)]
    if not hosts:
        return ""
    machines = sorted({f"{h['cpu']} ({h['logical_cpus']} logical CPUs), {h['threads'] or 'default'} threads" for h in hosts})
    busy = sum(1 for h in hosts if h.get("busy"))
    note = f"Latency measured on {'; '.join(machines)}. *other load*: cores other processes kept busy during the timing."
    if busy:
        note += (f" **{busy} of {len(hosts)} rows were timed on a BUSY host** (other load above "
                 f"{BUSY_CORES} cores): their latencies are upper bounds; rerun the bench on a quiet machine.")
    return note


RUNTIME_COLOURS = {"litert": "tab:blue", "onnxruntime": "tab:orange", "tensorrt": "tab:green", "keras": "tab:purple"}
PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "dynamic": "D", "int8": "^"}
REFERENCE_STYLE = {"peer": ("black", "*"), "baseline": ("tab:gray", "P")}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower latency, higher accuracy), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def runtime_of(format_name: str) -> str:
    from edge_fer.formats import export_formats

    return next((f.runtime for f in export_formats() if f.name == format_name), "other")


def pyplot():
    """matplotlib without a display, and names drawn as plain text: a class, run or peer named "$x^{$" is a
    label, not TeX that can fail to parse."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_latency(rows: list[dict], target: str, path: Path, synthetic: bool = False,
                          references: list[dict] | None = None) -> bool:
    """Accuracy against p50: colour = runtime, marker = precision, references (peers, baselines) as stars and
    crosses, the Pareto front as a step line, labels moved apart (adjustText), SYNTHETIC stamped across."""
    plt = pyplot()
    from adjustText import adjust_text
    from matplotlib.lines import Line2D

    points = [{"x": r["p50_ms"], "y": r["accuracy"], "label": r.get("label") or r["format"],
               "runtime": runtime_of(r["format"]), "precision": r.get("precision") or "fp32", "kind": "artifact"}
              for r in rows if r.get("p50_ms") and r.get("accuracy") is not None]
    points += [{"x": r["p50_ms"], "y": r["accuracy"], "label": r["label"], "kind": r.get("kind", "peer")}
               for r in references or [] if r.get("p50_ms") and r.get("accuracy") is not None]
    if not points:
        return False
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for point in points:
        if point["kind"] == "artifact":
            colour, marker = RUNTIME_COLOURS.get(point["runtime"], "tab:brown"), PRECISION_MARKERS.get(point["precision"], "o")
        else:
            colour, marker = REFERENCE_STYLE.get(point["kind"], REFERENCE_STYLE["peer"])
        axes.scatter(point["x"], point["y"], s=110 if marker == "*" else 45, c=colour, marker=marker, zorder=3,
                     edgecolors="white", linewidths=0.5)
    front = pareto_front([(p["x"], p["y"]) for p in points])
    axes.step([points[i]["x"] for i in front], [points[i]["y"] for i in front], where="post", color="tab:red",
              linewidth=1.2, alpha=0.7, zorder=2)
    axes.scatter([points[i]["x"] for i in front], [points[i]["y"] for i in front], s=190, facecolors="none",
                 edgecolors="tab:red", linewidths=1.2, zorder=4)  # a front of one point has no line to see
    # many points: name only the front and the references (the table names the rest)
    named = points if len(points) <= 12 else [p for i, p in enumerate(points) if i in front or p["kind"] != "artifact"]
    labels = [axes.text(p["x"], p["y"], p["label"], fontsize=7.5) for p in named]
    latencies = [p["x"] for p in points]
    if max(latencies) > 10 * min(latencies):
        axes.set_xscale("log")  # a slow peer would squeeze every other point against the axis
    adjust_text(labels, ax=axes, expand=(1.6, 2.2), force_text=(0.6, 1.2), max_move=(60, 60),
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5})
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=name) for name, c in RUNTIME_COLOURS.items()
               if any(p.get("runtime") == name for p in points)]
    handles += [Line2D([], [], color="0.3", marker=m, linestyle="", label=name) for name, m in PRECISION_MARKERS.items()
                if any(p.get("precision") == name for p in points)]
    handles += [Line2D([], [], color=c, marker=m, linestyle="", markersize=9, label=kind) for kind, (c, m) in REFERENCE_STYLE.items()
                if any(p["kind"] == kind for p in points)]
    handles.append(Line2D([], [], color="tab:red", marker="o", markerfacecolor="none", label="Pareto front"))
    axes.legend(handles=handles, fontsize=7.5, loc="best", ncols=2)
    axes.set_xlabel("p50 latency, batch 1 (ms)" + (", log scale" if axes.get_xscale() == "log" else ""))
    axes.set_ylabel("test accuracy")
    axes.set_title(f"accuracy vs latency on {target}" + (" (unlabelled points: see the table)" if len(named) < len(points) else ""))
    axes.grid(alpha=0.3)
    if synthetic:
        axes.text(0.5, 0.5, "SYNTHETIC", transform=axes.transAxes, fontsize=44, color="red", alpha=0.18,
                  ha="center", va="center", rotation=20, weight="bold", zorder=0)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def plot_confusion(row: dict, path: Path) -> bool:
    plt = pyplot()
    import numpy as np

    scores = (row.get("metrics") or {}).get("scores")
    if not scores:
        return False
    confusion = np.asarray(scores["confusion"], dtype=float)
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(6, 5))
    axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    classes = scores["classes"]
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(classes)), classes, fontsize=8)
    for i in range(len(classes)):
        for j in range(len(classes)):
            axes.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                      color="white" if normalised[i, j] > 0.5 else "black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{row['format']} on {row['target']} (accuracy {scores['accuracy']:.3f})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def markdown_table(columns: list[str], rows: list[list]) -> str:
    cell = lambda value: "-" if value is None else str(value).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


LEDGER = ".edge_fer-report.json"  # in the report folder: every file a report wrote there, with its SHA-256


class ReportLedger:
    """What edge-fer reports wrote in a folder. A report overwrites or deletes only files in the ledger whose
    contents are still what it wrote: a user's own report.md or PNG in the same folder is never touched."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            entries = json.loads((folder / LEDGER).read_text()).get("files", {})
        except (OSError, ValueError, AttributeError):
            entries = {}  # none yet, or unreadable: this report owns nothing here
        self.files = {str(k): str(v) for k, v in entries.items()} if isinstance(entries, dict) else {}

    def owns(self, path: Path) -> bool:
        from edge_fer.artifacts import file_sha256

        key = path.relative_to(self.folder).as_posix()
        return key in self.files and path.is_file() and not path.is_symlink() and file_sha256(path) == self.files[key]

    def claim(self, path: Path) -> Path:
        """A path this report may write: absent, or written by an earlier report and unchanged since."""
        if (path.exists() or path.is_symlink()) and not self.owns(path):
            raise UserError(f"{path} exists and was not written by an edge-fer report (or was changed since): move it, "
                            "or give the report another folder or name")
        return path

    def record(self, path: Path) -> None:
        from edge_fer.artifacts import file_sha256

        self.files[path.relative_to(self.folder).as_posix()] = file_sha256(path)

    def prune(self, folder: Path, markdown: str) -> list[str]:
        """Delete the PNGs an earlier report wrote in its files folder that this one no longer shows."""
        stale = [png for png in sorted(folder.glob("*.png")) if f"{folder.name}/{png.name}" not in markdown and self.owns(png)]
        for png in stale:
            png.unlink()
            self.files.pop(png.relative_to(self.folder).as_posix(), None)
        return [png.name for png in stale]

    def save(self) -> None:
        from edge_fer.artifacts import atomic_write_bytes

        atomic_write_bytes(self.folder / LEDGER, json.dumps({"files": self.files}, indent=1, sort_keys=True).encode())


def build_report(store_path: str | Path, out: str | Path, commands: list[str] | None = None, name: str = "report",
                 extras: list[tuple[str, str]] | None = None, references: list[dict] | None = None) -> dict:
    """Write report.md, report.html and PNGs into `out`; return the sections (for the terminal and --json). Files
    in `out` that no edge-fer report wrote are neither overwritten nor deleted (ReportLedger)."""
    rows = store.fetch(store_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ledger = ReportLedger(out)
    for path in (out / f"{name}.md", out / f"{name}.html"):
        ledger.claim(path)
    rates = peak_rates(rows)
    sections = [target_section(target, label_by_run(target_rows), out, rates, references or [], f"{name}_files", ledger)
                for target, target_rows in latest_per_artifact(rows).items()]
    runs = {}
    for row in rows:
        run = runs.setdefault(row["run_id"], {"run_id": row["run_id"], "created": row["created"], "target": row["target"], "artifacts": 0})
        run["artifacts"] += 1
    history = [[r["run_id"], r["created"], r["target"], r["artifacts"]] for r in runs.values()]
    markdown = render_markdown(sections, history, commands or [], extras or [])
    atomic_text(out / f"{name}.md", markdown)
    atomic_text(out / f"{name}.html", render_html(markdown, title=f"edge_fer report: {name}"))
    for path in (out / f"{name}.md", out / f"{name}.html"):
        ledger.record(path)
    ledger.prune(out / f"{name}_files", markdown)
    ledger.save()
    return {"sections": sections, "history": history, "store": str(store_path), "out": str(out),
            "markdown": str(out / f"{name}.md"), "html": str(out / f"{name}.html")}


def run_of(artifact: str) -> str:
    """runs/<run>/export/<file> -> <run>; a file anywhere else -> its folder's name."""
    folder = Path(artifact).parent
    return folder.parent.name if folder.name == "export" else folder.name


def label_by_run(rows: list[dict]) -> list[dict]:
    """Rows from several run folders (a sweep) are labelled run:format, so the table and plot tell them apart."""
    runs = {run_of(row["artifact"]) for row in rows}
    if len(runs) > 1:
        for row in rows:
            row["label"] = f"{run_of(row['artifact'])}:{row['format']}"
    return sorted(rows, key=lambda row: row.get("label") or row["format"])


def target_section(target: str, target_rows: list[dict], out: Path, rates: dict, references: list[dict],
                   files: str, ledger: "ReportLedger") -> dict:
    """A target's table, plot and confusion matrices (of the artifacts on the Pareto front: the ones worth
    shipping), the images in out/<files>/."""
    (out / files).mkdir(parents=True, exist_ok=True)
    plot = f"{files}/accuracy-latency-{target}.png"
    timed = [row for row in target_rows if row.get("p50_ms") and row.get("accuracy") is not None]
    front = [timed[i] for i in pareto_front([(row["p50_ms"], row["accuracy"]) for row in timed])]
    confusions = []
    for row in front:
        image = f"{files}/confusion-{target}-{(row.get('label') or row['format']).replace(':', '-')}.png"
        if plot_confusion(row, ledger.claim(out / image)):
            ledger.record(out / image)
            confusions.append(image)
    synthetic = any(r.get("synthetic") for r in target_rows)
    plotted = plot_accuracy_latency(target_rows, target, ledger.claim(out / plot), synthetic, references)
    if plotted:
        ledger.record(out / plot)
    return {"target": target, "rows": table_rows(target_rows, target, rates), "plot": plot if plotted else None,
            "confusions": confusions, "datasets": sorted({r["dataset"] for r in target_rows if r.get("dataset")}),
            "synthetic": synthetic, "versions": (target_rows[-1].get("versions") or {}).get("host"),
            "host_note": " ".join(filter(None, [host_note(target_rows), peak_note(target, rates)]))}


def dataset_note(section: dict) -> str:
    names = ", ".join(section["datasets"]) or "no dataset (latency only)"
    return f"Scored on: {names}" + (" — **SYNTHETIC** data, not real faces." if section["synthetic"] else ".")


ESTIMATE_NOTE = ("*roofline est. ms* is an ESTIMATE from the target's published peak (see targets/*.toml), not a "
                 "measurement: max(2·MACs / peak ops, artifact bytes / peak bandwidth).")


def template_environment(autoescape: bool):
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("edge_fer", "templates"), autoescape=autoescape,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def render_markdown(sections: list[dict], history: list[list], commands: list[str], extras: list[tuple[str, str]]) -> str:
    def view(section: dict) -> dict:
        images = ([{"file": section["plot"], "alt": "accuracy vs latency"}] if section["plot"] else []) + \
                 [{"file": image, "alt": "confusion matrix"} for image in section["confusions"]]
        software = markdown_table(["software", "version"], list((section["versions"] or {}).items()))
        return {"target": section["target"], "note": dataset_note(section), "host_note": section.get("host_note", ""),
                "table": markdown_table(*visible(COLUMNS, section["rows"])), "images": images,
                "software": software if section["versions"] else ""}

    template = template_environment(autoescape=False).get_template("report.md.j2")
    text = template.render(commands=commands, extras=extras, sections=[view(s) for s in sections],
                           estimate_note=ESTIMATE_NOTE, history=markdown_table(["run", "time (UTC)", "target", "artifacts"], history))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip() + "\n"


def render_html(markdown: str, title: str) -> str:
    """The Markdown report as HTML (CommonMark + tables; raw HTML in included files is shown as text, not run)."""
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return template_environment(autoescape=True).get_template("report.html.j2").render(title=title, body=Markup(body))


def atomic_text(path: Path, text: str) -> None:
    from edge_fer.artifacts import atomic_write_bytes

    atomic_write_bytes(path, text.encode())
