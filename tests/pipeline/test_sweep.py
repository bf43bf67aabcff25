import json

import pytest

from edge_fer.bench import store
from edge_fer.cli import main
from edge_fer.errors import UserError
from edge_fer.pipeline.sweep import sweep_points, warm_start_text
from tests.pipeline.test_runner import write_pipeline

SWEEP = """
[sweep]
grid = { "model.alpha" = [0.25] }
points = [{ name = "tiny-wide", set = { "model.alpha" = 1.0, "train.scratch.epochs" = 1 } }]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One tiny sweep's pipeline file, its points trained and exported once for this module's tests (a test that
    runs more stages reuses them from the cache, as a user's second run would)."""
    pipeline = write_pipeline(tmp_path_factory.mktemp("sweep"))
    pipeline.write_text(pipeline.read_text().replace('formats = "tflite-fp32,onnx-fp32"', 'formats = "tflite-fp32"')
                        .replace("min_duration_s = 0.2", "min_duration_s = 1.0").replace("min_queries = 10", "min_queries = 100")
                        + SWEEP)
    assert main(["run", str(pipeline), "--set", 'stages=["data","train","export"]']) == 0
    return pipeline


def test_grid_and_explicit_points_are_named_and_checked():
    points = sweep_points("front", {"model.image_size": [64, 80], "model.alpha": [0.5]}, [{"name": "x", "set": {"a.b": 1}}])
    assert [p.name for p in points] == ["front-image_size64-alpha0.5", "front-image_size80-alpha0.5", "x"]
    assert points[1].overrides == {"model.image_size": 80, "model.alpha": 0.5}
    assert [p.name for p in sweep_points("front", {}, [{"name": "only", "set": {}}])] == ["only"]  # no empty grid point
    with pytest.raises(UserError, match="must be a non-empty list"):
        sweep_points("front", {"model.alpha": 0.5}, [])
    with pytest.raises(UserError, match="names repeat: x"):
        sweep_points("front", {}, [{"name": "x"}, {"name": "x"}])


def test_a_point_extends_an_earlier_one_its_own_settings_on_top():
    points = sweep_points("front", {"model.alpha": [0.5]}, [
        {"name": "base", "set": {"model.image_size": 96, "train.seed": 0}},
        {"name": "seed1", "extends": "base", "set": {"train.seed": 1}},
        {"name": "seed1-lr", "extends": "seed1", "set": {"train.scratch.learning_rate": 3e-4}},
        {"name": "from-grid", "extends": "front-alpha0.5"}])
    overrides = {point.name: point.overrides for point in points}
    assert overrides["seed1"] == {"model.image_size": 96, "train.seed": 1}
    assert overrides["seed1-lr"] == {"model.image_size": 96, "train.seed": 1, "train.scratch.learning_rate": 3e-4}
    assert overrides["from-grid"] == {"model.alpha": 0.5}
    assert overrides["base"] == {"model.image_size": 96, "train.seed": 0}  # not changed by the points after it
    with pytest.raises(UserError, match="sweep point later: extends = 'after' names no point above it"):
        sweep_points("front", {}, [{"name": "later", "extends": "after"}, {"name": "after"}])
    with pytest.raises(UserError, match=r"sweep point x: extends = \['base'\] names no point above it"):
        sweep_points("front", {}, [{"name": "base"}, {"name": "x", "extends": ["base"]}])
    with pytest.raises(UserError, match="sweep point x: unknown key extend;"):
        sweep_points("front", {}, [{"name": "base"}, {"name": "x", "extend": "base"}])


def test_a_sweep_runs_each_point_then_one_bench_and_one_report(swept, capsys):
    capsys.readouterr()
    assert main(["run", str(swept), "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    names = [point["point"] for point in outcome["points"]]
    assert names == ["tiny-alpha0.25", "tiny-wide"]  # grid naming and expansion: the test above
    runs = swept.parent / "runs"
    for name in names:  # each point in its own cached run folder, without bench or report of its own
        assert (runs / name / "export" / "model-tflite-fp32.tflite").is_file()
        assert not (runs / name / "bench").exists()
    meta = [json.loads((runs / name / "train" / "model.json").read_text()) for name in names]
    assert [m["alpha"] for m in meta] == [0.25, 1.0]
    rows = store.fetch(runs / "tiny" / "results.sqlite")
    assert len(rows) == 2 and len({row["run_id"] for row in rows}) == 1  # one bench session for every point
    report = (runs / "tiny" / "report" / "report.md").read_text()
    assert "tiny-alpha0.25:tflite-fp32" in report and "tiny-wide:tflite-fp32" in report and "## Sweep points" in report

    assert main(["run", str(swept), "--json"]) == 0  # a rerun skips every point's stages
    again = json.loads(capsys.readouterr().out)
    assert all(s["status"] == "skipped" for point in again["points"] for s in point["stages"])


@pytest.mark.hostile("data lost or wrong")
def test_a_sweep_benched_over_ssh_gives_each_point_its_own_numbers(swept, tmp_path, capsys, loopback_target):
    """Every point's file has the same name; on an SSH target they once overwrote each other, and every row held
    the last point's numbers. Each point's remote p50 is now its own file's local p50, within noise."""
    p50 = {}
    for where, target in (("local", "host-cpu"), ("remote", str(loopback_target))):
        database = tmp_path / f"{where}.sqlite"
        assert main(["run", str(swept), "--set", f"bench.target='{target}'", "--set", f"bench.store='{database}'",
                     "--set", "bench.threads=1", "--set", 'stages=["data","train","export","bench"]', "--json"]) == 0
        capsys.readouterr()
        rows = store.fetch(database)
        assert all(row["p50_ms"] for row in rows), [(row["artifact"], row["status"], row.get("reason")) for row in rows]
        p50[where] = {row["artifact"].split("/")[-3]: row["p50_ms"] for row in rows}
    local, remote = p50["local"], p50["remote"]
    assert set(remote) == {"tiny-alpha0.25", "tiny-wide"} and remote["tiny-wide"] > 1.3 * remote["tiny-alpha0.25"], remote
    for point in remote:
        assert 0.5 < remote[point] / local[point] < 2.0, (local, remote)


@pytest.mark.hostile("malformed-input")
def test_a_bad_point_stops_the_sweep_before_any_work(tmp_path, capsys):
    pipeline = write_pipeline(tmp_path)
    pipeline.write_text(pipeline.read_text() + '\n[sweep]\ngrid = { "model.variant" = ["patt_lite", "pat_lite"] }\n')
    assert main(["run", str(pipeline)]) == 2
    err = capsys.readouterr().err
    assert "sweep point tiny-variantpat_lite" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_point_runs_the_named_sweep_points_alone_and_refuses_unknown_names(tmp_path, capsys):
    pipeline = write_pipeline(tmp_path)
    pipeline.write_text(pipeline.read_text().replace('stages = ["data", "train", "export", "evaluate", "bench", "report"]',
                                                     'stages = ["data"]') + SWEEP)
    assert main(["run", str(pipeline), "--point", "tiny-nope"]) == 2
    err = capsys.readouterr().err
    assert "no sweep point named tiny-nope; the points are: tiny-alpha0.25, tiny-wide" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    assert main(["run", str(pipeline), "--point", "tiny-wide", "--json"]) == 0
    assert [point["point"] for point in json.loads(capsys.readouterr().out)["points"]] == ["tiny-wide"]
    assert (tmp_path / "runs" / "tiny-wide").is_dir() and not (tmp_path / "runs" / "tiny-alpha0.25").exists()


def test_a_warm_started_point_names_its_start_and_that_start_s_training_time(tmp_path):
    assert warm_start_text(None) is None
    assert warm_start_text({"path": "runs/a", "train_seconds": 12.4}) == "a (12 s)"
    (tmp_path / "model.json").write_text(json.dumps({"train_seconds": 99.0}))
    assert warm_start_text({"path": str(tmp_path)}) == f"{tmp_path.name} (99 s)"  # an older record: read the start
    assert warm_start_text({"path": str(tmp_path / "model.keras")}) == f"{tmp_path.name} (99 s)"
    assert warm_start_text({"path": str(tmp_path / "gone" / "model.keras")}) == "gone"


@pytest.mark.hostile("bounded")
def test_a_huge_grid_is_refused_before_it_is_built(monkeypatch):
    import itertools

    def no_product(*args, **kwargs):
        raise AssertionError("the grid was built before its size was checked")

    monkeypatch.setattr(itertools, "product", no_product)
    grid = {f"train.k{index}": list(range(20)) for index in range(6)}  # 64 million points
    with pytest.raises(UserError, match="the sweep has 64000000 points; at most 100"):
        sweep_points("huge", grid, [])


@pytest.mark.hostile("tracebacks")
@pytest.mark.parametrize("payload", ['[1, 2]', '{"rows": "abc"}', '{"rows": [{"model": "x", "latency": 5}]}',
                                     '{"rows": [{"model": "x", "latency": {"p50_ms": "fast"}, "accuracy": 0.7}]}'])
def test_a_references_file_of_the_wrong_shape_is_one_line(tmp_path, payload):
    from edge_fer.report.sections import load_references

    path = tmp_path / "peer.json"
    path.write_text(payload)
    with pytest.raises(UserError, match="report.references"):
        load_references([str(path)])
