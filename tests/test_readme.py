"""Every figure the README quotes is in a committed results file: change one digit and this fails."""

import re

from tests.helpers import REPO

FIGURE = re.compile(r"(?<![\w.])\d+\.\d{2,}(?![\w.])")  # 0.8425, 0.44, 1.28: measured values
# a version or an identifier, not a measurement: "numpy 1.24", "arXiv 2306.09626"
NAMED = re.compile(r"(?:arXiv|numpy|onnxruntime|tflite-runtime|Python|TensorRT|JetPack|CUDA) (\d+\.\d+)")


def committed_figures() -> set[str]:
    found = set()
    for path in (REPO / "benchmarks").rglob("*"):
        if path.suffix in (".md", ".json") and path.is_file():
            found |= set(FIGURE.findall(path.read_text(errors="replace")))
    return found


def quoted_figures(text: str) -> set[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # commands, not figures
    return set(FIGURE.findall(NAMED.sub("", text)))


def test_every_readme_figure_is_in_a_committed_results_file():
    missing = quoted_figures((REPO / "README.md").read_text()) - committed_figures()
    assert not missing, f"README.md quotes figures no file under benchmarks/ holds: {sorted(missing)}"


def test_a_changed_digit_is_caught():
    text, committed = (REPO / "README.md").read_text(), committed_figures()
    changes = {figure: figure[:-1] + str((int(figure[-1]) + 1) % 10) for figure in sorted(quoted_figures(text))}
    figure, changed = next((f, c) for f, c in changes.items() if c not in committed)  # a digit no file holds
    assert quoted_figures(text.replace(figure, changed)) - committed


def test_a_figure_on_a_line_that_names_its_file_is_in_that_file():
    """A results-table row names its source (`benchmarks/....md`): its figures must be in that very file."""
    wrong = []
    for line in (REPO / "README.md").read_text().splitlines():
        sources = re.findall(r"`(benchmarks/[\w./-]+\.(?:md|json))`", line)
        if len(sources) == 1:
            held = set(FIGURE.findall((REPO / sources[0]).read_text()))
            wrong += [f"{figure} ({sources[0]})" for figure in quoted_figures(line) - held]
    assert not wrong, wrong
