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
