"""Every pipeline file the repository ships parses, and so does each of its sweep points: a mistyped key or an
impossible recipe in a long FERPlus point should fail here, not an hour into a run. (Dataset roots are not
checked: most of them live outside the repository.)"""

import pytest

from edge_fer.config import from_dict, load_toml
from edge_fer.errors import UserError
from edge_fer.pipeline.config import PipelineConfig
from edge_fer.pipeline.sweep import point_data, sweep_points
from edge_fer.train.config import check_recipe, check_scratch_schedule
from tests.helpers import REPO

PIPELINES = sorted((REPO / "pipelines").glob("*.toml"))


def point_configs(path):
    data = load_toml(path)
    data.setdefault("name", path.stem)
    config = from_dict(PipelineConfig, data)
    points = sweep_points(config.name, config.sweep.grid, config.sweep.points)
    return [config] + [from_dict(PipelineConfig, point_data(data, point, config.stages)) for point in points]


@pytest.mark.parametrize("path", PIPELINES, ids=[path.stem for path in PIPELINES])
def test_a_shipped_pipeline_and_its_points_parse(path):
    for config in point_configs(path):
        check_recipe(config.train)
        check_scratch_schedule(config.train.scratch)


def test_a_mistyped_key_in_a_point_is_refused(tmp_path):
    broken = tmp_path / "broken.toml"
    text = (REPO / "pipelines" / "ferplus-recipe-64.toml").read_text()
    broken.write_text(text.replace('"train.mixup" = 0.2', '"train.mixpu" = 0.2'))
    with pytest.raises(UserError, match="mixpu"):
        point_configs(broken)
