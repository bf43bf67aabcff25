"""Every pipeline file the repository ships parses, and so does each of its sweep points: a mistyped key or an
impossible recipe in a long FERPlus point should fail here, not an hour into a run. (Dataset roots are not
checked: most of them live outside the repository.)"""

import pytest

from edge_fer.config import from_dict, load_toml
from edge_fer.errors import UserError
from edge_fer.pipeline.config import PipelineConfig
from edge_fer.pipeline.sweep import build_points
from edge_fer.train.config import check_recipe
from tests.helpers import REPO

PIPELINES = sorted((REPO / "pipelines").glob("*.toml"))


def point_configs(path):
    """The file's config and its points', built as `edge-fer run` builds them; each passes the recipe checks
    (schedules included) that `edge-fer run` applies before any work."""
    data = load_toml(path)
    data.setdefault("name", path.stem)
    config = from_dict(PipelineConfig, data)
    check_recipe(config.train)
    return [config] + build_points(config, data, check=lambda point_config: check_recipe(point_config.train))


@pytest.mark.parametrize("path", PIPELINES, ids=[path.stem for path in PIPELINES])
def test_a_shipped_pipeline_and_its_points_parse(path):
    assert point_configs(path)


def test_a_mistyped_key_in_a_point_is_refused(tmp_path):
    broken = tmp_path / "broken.toml"
    text = (REPO / "pipelines" / "ferplus-recipe-64.toml").read_text()
    broken.write_text(text.replace('"train.mixup" = 0.2', '"train.mixpu" = 0.2'))
    with pytest.raises(UserError, match="mixpu"):
        point_configs(broken)
