"""`edge-fer report`: Markdown and HTML (plus PNG plots) from the results store, and the same tables in the
terminal. Per target: the latest measurement of each artifact; below, every run, so runs merge and compare."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from edge_fer.bench import store
from edge_fer.targets import load_target

COLUMNS = ["format", "precision", "size MB", "accuracy", "macro-F1", "agreement", "p50 ms", "p90 ms", "images/s",
           "roofline est. ms"]


SCORE_FIELDS = ("accuracy", "macro_f1", "dataset", "synthetic")


def latest_per_artifact(rows: list[dict]) -> dict[str, list[dict]]:
    """target -> the newest row for each (artifact path, format): a file exported again to the same path replaces
    the older one. Accuracy belongs to the file's contents, not the run: a newer latency-only row keeps the scores
    of the newest scored row with the same artifact hash."""
    latest: dict[tuple, dict] = {}
    scored: dict[tuple, dict] = {}
    for row in rows:
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
    macs = ((row.get("metrics") or {}).get("macs")) or row.get("macs")
    peak_tera = device.peak_int8_tops if row.get("precision") == "int8" else device.peak_fp16_tflops
    if not macs or not peak_tera or not device.memory_bandwidth_gbs or not row.get("size_bytes"):
        return None
    compute_s = 2 * macs / (peak_tera * 1e12)
    memory_s = row["size_bytes"] / (device.memory_bandwidth_gbs * 1e9)
    return 1000 * max(compute_s, memory_s)


def table_rows(rows: list[dict], target: str) -> list[list]:
    def number(value, digits=3):
        return None if value is None else round(float(value), digits)

    return [[row["format"], row.get("precision"), number((row.get("size_bytes") or 0) / 1e6, 2) if row.get("size_bytes") else None,
             number(row.get("accuracy"), 4), number(row.get("macro_f1"), 4), number(row.get("agreement"), 4),
             number(row.get("p50_ms")), number(row.get("p90_ms")), number(row.get("images_per_s"), 1),
             number(roofline_ms(row, target), 4)] if row["status"] == "passed" else
            [row["format"], row.get("precision"), None, None, None, None, None, None, None, f"failed: {row.get('reason')}"]
            for row in rows]


def plot_accuracy_latency(rows: list[dict], target: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["p50_ms"], r["accuracy"], r["format"]) for r in rows if r.get("p50_ms") and r.get("accuracy") is not None]
    if not points:
        return False
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for latency, accuracy, name in points:
        axes.scatter(latency, accuracy, s=40)
        axes.annotate(name, (latency, accuracy), textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes.set_xlabel("p50 latency, batch 1 (ms)")
    axes.set_ylabel("test accuracy")
    axes.set_title(f"accuracy vs latency on {target}")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def plot_confusion(row: dict, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    cell = lambda value: "-" if value is None else str(value)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def html_table(columns: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('-' if v is None else str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def build_report(store_path: str | Path, out: str | Path, commands: list[str] | None = None, name: str = "report",
                 extras: list[tuple[str, str]] | None = None) -> dict:
    """Write report.md, report.html and PNGs into `out`; return the sections (for the terminal and --json)."""
    rows = store.fetch(store_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for target, target_rows in latest_per_artifact(rows).items():
        plot = out / f"accuracy-latency-{target}.png"
        confusions = []
        for row in target_rows:
            image = out / f"confusion-{target}-{row['format']}.png"
            if plot_confusion(row, image):
                confusions.append(image.name)
        synthetic = any(r.get("synthetic") for r in target_rows)
        datasets = sorted({r["dataset"] for r in target_rows if r.get("dataset")})
        sections.append({"target": target, "rows": table_rows(target_rows, target),
                         "plot": plot.name if plot_accuracy_latency(target_rows, target, plot) else None,
                         "confusions": confusions, "datasets": datasets, "synthetic": synthetic,
                         "versions": (target_rows[-1].get("versions") or {}).get("host")})
    runs = {}
    for row in rows:
        run = runs.setdefault(row["run_id"], {"run_id": row["run_id"], "created": row["created"], "target": row["target"], "artifacts": 0})
        run["artifacts"] += 1
    history = [[r["run_id"], r["created"], r["target"], r["artifacts"]] for r in runs.values()]
    extras = extras or []
    write_markdown(out / f"{name}.md", sections, history, commands, extras)
    write_html(out / f"{name}.html", sections, history, commands, extras)
    return {"sections": sections, "history": history, "store": str(store_path), "out": str(out),
            "markdown": str(out / f"{name}.md")}


def dataset_note(section: dict) -> str:
    names = ", ".join(section["datasets"]) or "no dataset (latency only)"
    return f"Scored on: {names}" + (" — SYNTHETIC data, not real faces." if section["synthetic"] else ".")


ESTIMATE_NOTE = ("`roofline est. ms` is an ESTIMATE from the target's published peak (see targets/*.toml), not a "
                 "measurement: max(2·MACs / peak ops, artifact bytes / peak bandwidth).")


def write_markdown(path: Path, sections: list[dict], history: list[list], commands: list[str] | None,
                   extras: list[tuple[str, str]]) -> None:
    parts = ["# edge_fer benchmark report", ""]
    if commands:
        parts += ["Produced by:", "", "```bash", *commands, "```", ""]
    for title, body in extras:
        parts += [f"## {title}", "", body.strip(), ""]
    for section in sections:
        parts += [f"## {section['target']}", "", dataset_note(section), "", markdown_table(COLUMNS, section["rows"]), ""]
        if section["plot"]:
            parts += [f"![accuracy vs latency]({section['plot']})", ""]
        parts += [f"![confusion]({image})" for image in section["confusions"]] + [""]
        if section["versions"]:
            parts += ["Software: " + ", ".join(f"{k} {v}" for k, v in section["versions"].items()), ""]
    parts += [ESTIMATE_NOTE, "", "## Runs in the store", "", markdown_table(["run", "time (UTC)", "target", "artifacts"], history), ""]
    atomic_text(path, "\n".join(parts))


def write_html(path: Path, sections: list[dict], history: list[list], commands: list[str] | None,
               extras: list[tuple[str, str]]) -> None:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>edge_fer report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}</style>",
             "</head><body><h1>edge_fer benchmark report</h1>"]
    if commands:
        parts.append("<pre>" + html.escape("\n".join(commands)) + "</pre>")
    for title, body in extras:
        parts.append(f"<h2>{html.escape(title)}</h2><pre>{html.escape(body.strip())}</pre>")
    for section in sections:
        parts += [f"<h2>{html.escape(section['target'])}</h2><p>{html.escape(dataset_note(section))}</p>",
                  html_table(COLUMNS, section["rows"])]
        if section["plot"]:
            parts.append(f"<p><img src='{html.escape(section['plot'])}' alt='accuracy vs latency'></p>")
        parts += [f"<img src='{html.escape(image)}' alt='confusion'>" for image in section["confusions"]]
        if section["versions"]:
            parts.append("<p>Software: " + html.escape(json.dumps(section["versions"])) + "</p>")
    parts += [f"<p>{html.escape(ESTIMATE_NOTE)}</p><h2>Runs in the store</h2>",
              html_table(["run", "time (UTC)", "target", "artifacts"], history), "</body></html>"]
    atomic_text(path, "\n".join(parts))


def atomic_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".partial-{path.name}")
    temporary.write_text(text)
    os.replace(temporary, path)
