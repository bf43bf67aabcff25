"""The committed toy model of the export tests is used only while it is what its recipe would train."""

import tests.toy_model as toy


def test_the_committed_toy_model_matches_its_recipe_and_data():
    assert toy.committed_toy_problem() is None, "stale: run python -m tests.toy_model"


def test_a_changed_recipe_or_changed_images_are_noticed(monkeypatch):
    monkeypatch.setattr(toy, "RECIPE", {**toy.RECIPE, "model": {"image_size": 96, "weights": "none"}})
    assert "another recipe" in toy.committed_toy_problem()
    monkeypatch.undo()
    monkeypatch.setattr(toy, "data_digest", lambda: "0" * 64)
    assert "synthetic images changed" in toy.committed_toy_problem()
