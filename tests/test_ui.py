from rich.console import Console

from edge_fer import ui
from edge_fer.report import COLUMNS


def test_a_narrow_terminal_wraps_the_numbers_but_keeps_each_rows_name_whole():
    console = Console(width=80, record=True)
    row = ["ferplus-vote:tflite-int8-qat", "int8", 1.28, 0.8464, 0.7025, 0.956, 0.615, 0.8, "0.452-0.848", 2121.0,
           "0.00", 0.06, None]
    console.print(ui.table("benchmark", COLUMNS, [row]))
    text = console.export_text()
    assert "ferplus-vote:tflite-int8-qat" in text and max(len(line) for line in text.splitlines()) <= 80


def test_a_long_value_in_a_narrow_column_folds_instead_of_ending_in_an_ellipsis():
    console = Console(width=80, record=True)
    columns = ["point", "train s", "float accuracy", "best int8", "int8 accuracy", "teacher accuracy"]
    console.print(ui.table("sweep points", columns, [["ferplus-vote-draw-long", 5173, 0.8291, "tflite-int8-qat", 0.8317, None]]))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "tflite-int8-qat" in "".join(line.split("│")[4].strip() for line in text.splitlines() if line.count("│") > 4)
