"""Typed configuration from TOML: unknown keys are one line that names the key meant."""

import pytest

from edge_fer.config import from_dict
from edge_fer.errors import UserError
from edge_fer.pipeline.config import PipelineConfig


@pytest.mark.parametrize("section, key, meant", [
    ("train", "epochs", "train.scratch.epochs"),  # the same name one table deeper
    ("train", "zoom", "train.augment.zoom"),
    ("train", "batch_sise", "'batch_size'"),  # a near spelling at the same level
])
def test_an_unknown_key_suggests_the_full_key(section, key, meant):
    with pytest.raises(UserError, match=meant):
        from_dict(PipelineConfig, {section: {key: 3}})


def test_a_key_with_no_near_match_says_only_that_it_is_unknown():
    with pytest.raises(UserError, match=r"unknown key train\.'nonsense'$"):
        from_dict(PipelineConfig, {"train": {"nonsense": 1}})
