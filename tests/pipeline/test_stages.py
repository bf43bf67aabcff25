"""The stage table: one row per stage, consistent with the runner, the config and the sweep."""

from dataclasses import fields

from edge_fer.pipeline.config import PipelineConfig
from edge_fer.pipeline.stages import STAGE_TABLE, STAGES, get_stage
from edge_fer.pipeline.summary import stage_rows
from edge_fer.pipeline.sweep import AFTER_POINTS


def test_each_stage_reads_only_stages_before_it_and_real_sections():
    sections = {f.name for f in fields(PipelineConfig)}
    for index, stage in enumerate(STAGE_TABLE):
        assert set(stage.upstream) <= set(STAGES[:index]), stage.name
        assert set(stage.sections) <= sections, stage.name
    assert len(set(STAGES)) == len(STAGES) and PipelineConfig().stages == list(STAGES)


def test_a_sweep_runs_the_once_per_sweep_stages_after_its_points():
    assert AFTER_POINTS == ("bench", "report")
    assert [s.name for s in STAGE_TABLE if s.once_per_sweep] == list(AFTER_POINTS)


def test_notes_say_what_a_stage_made():
    summary = [{"stage": "data", "status": "ran", "sizes": {"train": 10, "test": 4}},
               {"stage": "train", "status": "ran", "accuracy": 0.51234, "pretrained": False},
               {"stage": "train", "status": "ran", "accuracy": {"mean": 0.5}},  # cross-validation: no single figure
               {"stage": "export", "status": "ran", "formats": {"a": "passed", "b": "passed", "c": "failed"}},
               {"stage": "evaluate", "status": "ran", "keras": 0.5, "tflite-int8": 0.6},
               {"stage": "bench", "status": "ran", "x": {"status": "passed"}, "y": {"status": "failed"}, "peak x": {}},
               {"stage": "report", "status": "skipped", "report": "runs/a/report.md"}]
    assert [row[3] for row in stage_rows(summary)] == [
        "train 10, test 4", "test accuracy 0.5123, from scratch", "", "2 passed, 1 failed",
        "2 models, best 0.6000 (tflite-int8)", "1 of 2 artifacts measured, host peak", "runs/a/report.md"]
    assert get_stage("bench").intact is not None and get_stage("train").intact is None


def test_qat_runs_with_its_own_seed_or_else_the_training_seed(monkeypatch, tmp_path):
    from edge_fer.config import from_dict
    from edge_fer.pipeline.stages import RunContext, stage_qat

    seeds = []

    def run_qat(config):
        seeds.append(config.seed)
        return {"metrics": {"valid": {"accuracy": 0.5, "macro_f1": 0.5}}}

    monkeypatch.setattr("edge_fer.quantize.qat.run_qat", run_qat)
    for qat in ({}, {"seed": 1}):
        config = from_dict(PipelineConfig, {"name": "seeded", "train": {"seed": 3}, "qat": qat})
        stage_qat(RunContext(config), tmp_path / "qat")
    assert seeds == [3, 1]
