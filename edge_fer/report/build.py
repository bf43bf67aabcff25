"""`edge-fer report`: Markdown and HTML (plus PNG plots) from the results store, and the same tables in the
terminal. Per target: the latest measurement of each artifact; below, every run, so runs merge and compare."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge_fer import atomic
from edge_fer.artifacts import run_of
from edge_fer.bench import store
from edge_fer.bench.peak import PEAK_VARIANT, peak_rates
from edge_fer.errors import UserError
from edge_fer.report.plots import pareto_front, plot_accuracy_latency, plot_confusion
from edge_fer.report.tables import (
    ESTIMATE_NOTE,
    PAIRED_COLUMNS,
    dataset_note,
    host_note,
    markdown_table,
    paired_rows,
    peak_note,
    split_tables,
    table_rows,
)

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
        atomic.write_bytes(self.folder / LEDGER, json.dumps({"files": self.files}, indent=1, sort_keys=True).encode())


def build_report(store_path: str | Path, out: str | Path, commands: list[str] | None = None, name: str = "report",
                 extras: list[tuple[str, str]] | None = None, references: list[dict] | None = None,
                 figures: list[Path] | None = None) -> dict:
    """Write report.md, report.html and PNGs into `out`; return the sections (for the terminal and --json). Files
    in `out` that no edge-fer report wrote are neither overwritten nor deleted (ReportLedger). `figures` are PNGs
    made elsewhere that an extra section shows: they are copied to out/<name>_files/."""
    rows = store.fetch(store_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ledger = ReportLedger(out)
    for path in (out / f"{name}.md", out / f"{name}.html"):
        ledger.claim(path)
    (out / f"{name}_files").mkdir(parents=True, exist_ok=True)
    for figure in figures or []:  # images an extra section shows (as {name}_files/<its name>), copied in
        copy = ledger.claim(out / f"{name}_files" / figure.name)
        atomic.write_bytes(copy, figure.read_bytes())
        ledger.record(copy)
    rates = peak_rates(rows)
    sections = [target_section(target, label_by_run(target_rows), out, rates, references or [], f"{name}_files", ledger)
                for target, target_rows in store.latest_per_artifact(rows).items()]
    history = run_history(rows)
    markdown = render_markdown(sections, history, commands or [], extras or [])
    atomic.write_text(out / f"{name}.md", markdown)
    atomic.write_text(out / f"{name}.html", render_html(markdown, title=f"edge_fer report: {name}"))
    for path in (out / f"{name}.md", out / f"{name}.html"):
        ledger.record(path)
    ledger.prune(out / f"{name}_files", markdown)
    ledger.save()
    return {"sections": sections, "history": history, "store": str(store_path), "out": str(out),
            "markdown": str(out / f"{name}.md"), "html": str(out / f"{name}.html")}


def run_history(rows: list[dict]) -> list[list]:
    """One line per bench run in the store: its id, time, target, what it measured and how many rows."""
    runs: dict[str, dict] = {}
    for row in rows:
        run = runs.setdefault(row["run_id"], {"created": row["created"], "target": row["target"], "rows": 0, "peak": 0})
        run["rows"] += 1
        run["peak"] += row.get("variant") == PEAK_VARIANT
    kind = lambda run: "host peak (bench --peak)" if run["peak"] == run["rows"] else "artifacts" + (  # noqa: E731
        " and host peak" if run["peak"] else "")
    return [[run_id, run["created"], run["target"], kind(run), run["rows"]] for run_id, run in runs.items()]


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
    return {"target": target, "rows": table_rows(target_rows, target, rates), "paired": paired_rows(target_rows),
            "plot": plot if plotted else None,
            "confusions": confusions, "datasets": sorted({r["dataset"] for r in target_rows if r.get("dataset")}),
            "synthetic": synthetic, "versions": (target_rows[-1].get("versions") or {}).get("host"),
            "host_note": " ".join(filter(None, [host_note(target_rows), peak_note(target, rates)]))}


def template_environment(autoescape: bool):
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("edge_fer", "templates"), autoescape=autoescape,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def failures_below(rows: list[list]) -> tuple[list[list], list[str]]:
    """Rows whose last cell says why they failed get a short cell and the reason as a line under the tables (a
    long reason in a cell would make the table scroll sideways)."""
    kept, failures = [], []
    for row in rows:
        if isinstance(row[-1], str) and row[-1].startswith("failed: "):
            failures.append(f"- `{row[0]}` failed: {row[-1].removeprefix('failed: ')}")
            row = [*row[:-1], "failed (below)"]
        kept.append(row)
    return kept, failures


def render_markdown(sections: list[dict], history: list[list], commands: list[str], extras: list[tuple[str, str]]) -> str:
    def view(section: dict) -> dict:
        images = ([{"file": section["plot"], "alt": "accuracy vs latency"}] if section["plot"] else []) + \
                 [{"file": image, "alt": "confusion matrix"} for image in section["confusions"]]
        software = markdown_table(["software", "version"], list((section["versions"] or {}).items()))
        rows, failures = failures_below(section["rows"])
        accuracy, speed = split_tables(rows)
        return {"target": section["target"], "note": dataset_note(section), "host_note": section.get("host_note", ""),
                "accuracy_table": markdown_table(*accuracy), "speed_table": markdown_table(*speed), "images": images,
                "failures": failures, "software": software if section["versions"] else "",
                "paired": paired_view(section.get("paired"))}

    template = template_environment(autoescape=False).get_template("report.md.j2")
    text = template.render(commands=commands, extras=extras, sections=[view(s) for s in sections],
                           estimate_note=ESTIMATE_NOTE, history=markdown_table(["run", "time (UTC)", "target", "measured", "rows"], history))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip() + "\n"


def paired_view(paired: dict | None) -> dict | None:
    if not paired:
        return None
    split = "validation" if paired["chosen_on"] == "valid" else "TEST (no validation scores)"
    return {"leader": paired["leader"], "split": split, "table": markdown_table(PAIRED_COLUMNS, paired["rows"])}


def render_html(markdown: str, title: str) -> str:
    """The Markdown report as HTML (CommonMark + tables; raw HTML in included files is shown as text, not run)."""
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return template_environment(autoescape=True).get_template("report.html.j2").render(title=title, body=Markup(body))
