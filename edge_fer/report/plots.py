"""The report's plots: accuracy against p50 latency with the Pareto front, and confusion matrices."""

from __future__ import annotations

from pathlib import Path

from edge_fer.evaluate import wilson_interval
from edge_fer.formats import find_format, runtime_of

RUNTIME_COLOURS = {"litert": "tab:blue", "onnxruntime": "tab:orange", "tensorrt": "tab:green", "keras": "tab:purple"}

PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "dynamic": "D", "int8": "^", "int8 + float layers": "v"}

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


def chosen_front(points: list[dict]) -> tuple[list[int], str]:
    """The front as `pick` sees it: on validation accuracy where every artifact has one (references, scored on test
    only, then stay off it), else on the test accuracy the plot shows. Returns the indices and the basis."""
    artifacts = [i for i, p in enumerate(points) if p["kind"] == "artifact"]
    if artifacts and all(points[i].get("valid") is not None for i in artifacts):
        front = pareto_front([(points[i]["x"], points[i]["valid"]) for i in artifacts])
        return [artifacts[i] for i in front], "validation"
    return pareto_front([(p["x"], p["y"]) for p in points]), "test"


def plotted_precision(row: dict) -> str:
    found = find_format(row.get("format"))
    return "int8 + float layers" if found and found.keeps_float else row.get("precision") or "fp32"


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
               "runtime": runtime_of(r["format"]), "precision": plotted_precision(r), "kind": "artifact",
               "valid": ((r.get("metrics") or {}).get("scores_valid") or {}).get("accuracy"),
               "busy": bool(((r.get("metrics") or {}).get("host") or {}).get("busy")),
               "interval": wilson_interval(r["accuracy"], ((r.get("metrics") or {}).get("scores") or {}).get("count"))}
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
        if point.get("interval"):  # the accuracy's 95% interval
            low, high = point["interval"]
            axes.errorbar(point["x"], point["y"], yerr=[[point["y"] - low], [high - point["y"]]], fmt="none",
                          ecolor=colour, alpha=0.45, elinewidth=1, capsize=2, zorder=2)
        if point.get("busy"):  # timed on a BUSY host: its latency is an upper bound, drawn hollow
            axes.scatter(point["x"], point["y"], s=45, facecolors="none", edgecolors=colour, marker=marker, zorder=3,
                         linewidths=1.2)
        else:
            axes.scatter(point["x"], point["y"], s=110 if marker == "*" else 45, c=colour, marker=marker, zorder=3,
                         edgecolors="white", linewidths=0.5)
    front, basis = chosen_front(points)
    if basis == "test":  # a front chosen on validation need not climb in test accuracy: rings only
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
    handles.append(Line2D([], [], color="tab:red", marker="o", markerfacecolor="none",
                          linestyle="-" if basis == "test" else "", label=f"Pareto front on {basis} accuracy"))
    if any(p.get("busy") for p in points):
        handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="",
                              label="hollow: timed on a BUSY host"))
    if any(p.get("interval") for p in points):
        handles.append(Line2D([], [], color="0.3", marker="|", linestyle="", markersize=10, label="95% interval"))
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
