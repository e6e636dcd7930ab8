"""The pipeline as a library call (the CLI's end-to-end run is tests/test_cli.py): its config says
where the model comes from, exactly once. TF-free."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgesmith.benchmarks import bench_config
from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError
from edgesmith.export import ExportConfig
from edgesmith.optimize.pipeline import ModelImport, PipelineConfig
from edgesmith.train.config import TrainConfig


def test_a_pipeline_trains_or_imports_exactly_once():
    train = TrainConfig(DataSpec("synthetic"), model="cnn")
    theirs = ModelImport(Path("theirs.keras"), "synthetic")
    assert PipelineConfig(ExportConfig(), bench_config("quick"), train=train).model_import is None
    assert PipelineConfig(ExportConfig(), bench_config("quick"), model_import=theirs).train is None
    for source in ({}, {"train": train, "model_import": theirs}):
        with pytest.raises(ConfigError, match="exactly one"):
            PipelineConfig(ExportConfig(), bench_config("quick"), **source)


def test_the_pipeline_command_builds_the_config_it_runs(monkeypatch, tmp_path):
    """The CLI only parses: data options reach an imported model too, bench options are checked first."""
    from typer.testing import CliRunner

    from edgesmith.cli import app
    from edgesmith.optimize import pipeline

    seen = []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda config, **kw: seen.append(config) or pipeline.PipelineResult())
    model = tmp_path / "theirs.keras"
    r = CliRunner().invoke(app, ["pipeline", "--data", "synthetic", "--model-file", str(model), "--image-size", "40x48",
                                 "--resize", "pad", "--limit-test", "50", "--calibration-size", "32",
                                 "--bench-seconds", "2", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    (config,) = seen
    assert config.train is None and config.out == tmp_path / "run"
    assert config.model_import == ModelImport(model, "synthetic", limit_test=50, image_size=(40, 48), resize="pad")
    assert config.export.calibration_size == 32 and config.bench.seconds == 2
    r = CliRunner().invoke(app, ["pipeline", "--data", "synthetic", "--threads", "one"])
    assert r.exit_code == 1 and len(seen) == 1  # refused before anything runs
