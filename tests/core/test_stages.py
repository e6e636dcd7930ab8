"""The run-directory contract: typed stage records, one writer, downstream invalidation."""
import json

import pytest

from edgesmith.core.errors import RunDirError
from edgesmith.core.rundir import RunDir, load_manifest
from edgesmith.core.stages import (BenchStage, ExportStage, ImportStage, TrainStage, create_run_manifest,
                                   keras_metrics, model_record, record_stage)


def _new_run(tmp_path, record):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.model.write_bytes(b"weights")
    model = model_record(run.model, "model.keras", architecture="cnn", params=12, image_shape=(32, 32, 3),
                         num_classes=10)
    create_run_manifest(run, "run", dataset={"source": "synthetic", "class_names": list("abcdefghij")},
                        model=model, record=record)
    return run


def test_train_creates_the_manifest_with_a_typed_model_record(tmp_path):
    run = _new_run(tmp_path, TrainStage(config={"epochs": 1}, precision_policy="float32", metrics={"top1": 0.5}))
    m = load_manifest(run)
    assert m["run"] == "run" and m["model"]["bytes"] == 7 and m["model"]["params"] == 12
    assert m["model"]["input"]["shape"] == [None, 32, 32, 3] and m["model"]["output"]["shape"] == [None, 10]
    assert set(m["stages"]) == {"train"} and m["stages"]["train"]["finished"]
    assert keras_metrics(m) == {"top1": 0.5}


def test_export_replaces_artifacts_and_drops_the_bench_results_it_outdates(tmp_path):
    run = _new_run(tmp_path, ImportStage(config={}, metrics={"top1": 0.7}, imported_from="m.keras"))
    record_stage(run, ExportStage(config={"variants": ["fp32"]}, sources={}), artifacts=[{"name": "a"}])
    run.bench.mkdir()
    (run.bench / "results.json").write_text("{}")
    record_stage(run, BenchStage(reports=["bench/results.json"]))
    m = load_manifest(run)
    assert set(m["stages"]) == {"import", "export", "bench"} and keras_metrics(m) == {"top1": 0.7}
    m = record_stage(run, ExportStage(config={"variants": ["int8"]}, sources={}), artifacts=[{"name": "b"}])
    assert set(m["stages"]) == {"import", "export"} and not run.bench.exists()
    assert json.loads(run.manifest.read_text())["artifacts"] == [{"name": "b"}]


def test_only_export_records_artifacts_and_a_missing_run_is_an_error(tmp_path):
    run = _new_run(tmp_path, TrainStage(config={}, precision_policy="float32", metrics={}))
    with pytest.raises(RunDirError, match="only the export stage"):
        record_stage(run, BenchStage(), artifacts=[])
    with pytest.raises(RunDirError, match="does not exist"):
        record_stage(tmp_path / "nope", BenchStage())
    assert keras_metrics(load_manifest(run)) == {}
