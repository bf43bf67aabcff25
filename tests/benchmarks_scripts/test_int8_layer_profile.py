import importlib.util

import pytest

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("int8_layer_profile", REPO / "benchmarks" / "int8_layer_profile.py")
profile = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profile)


def test_prefix_timings_add_up_to_the_whole_model(exported, monkeypatch, capsys):
    root, _ = exported
    monkeypatch.setattr(profile, "CUTS", ["conv_pw_1_relu", None])
    rows = profile.profile(str(root / "float"), threads=1, min_duration_s=0.05)
    assert [row["up_to"] for row in rows] == ["conv_pw_1_relu", "whole model"]
    assert all(row["fp32_ms"] > 0 and row["int8_ms"] > 0 for row in rows)
    for precision in ("fp32", "int8"):
        assert sum(row[f"block_{precision}_ms"] for row in rows) == pytest.approx(rows[-1][f"{precision}_ms"])
    assert "whole model" in capsys.readouterr().out
    table = profile.markdown(rows, 1, "python benchmarks/int8_layer_profile.py x")
    assert "| conv_pw_1_relu |" in table and "| whole model |" in table and "Produced by" in table
