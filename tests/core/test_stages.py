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


def test_export_adds_artifacts_and_keeps_the_bench_results_marked_stale(tmp_path):
    run = _new_run(tmp_path, ImportStage(config={}, metrics={"top1": 0.7}, imported_from="m.keras"))
    run.artifacts.mkdir()
    for f in ("a.tflite", "b.onnx", "c.onnx"):
        (run.artifacts / f).write_bytes(f.encode())
    first = [{"name": n, "file": f"artifacts/{f}", "source": s}
             for n, f, s in (("a", "a.tflite", "base"), ("b", "b.onnx", "base"), ("c", "c.onnx", "pruned"))]
    record_stage(run, ExportStage(config={"variants": ["fp32"]}, sources={"base": 1, "pruned": 2}), artifacts=first)
    run.bench.mkdir()
    (run.bench / "results.json").write_text("{}")
    (run.bench / "report.md").write_text("# Bench\n")
    record_stage(run, BenchStage(reports=["bench/results.json"]))
    m = load_manifest(run)
    assert set(m["stages"]) == {"import", "export", "bench"} and keras_metrics(m) == {"top1": 0.7}
    (run.artifacts / "c.onnx").unlink()  # gone from the folder: its entry goes too
    again = {"name": "b", "file": "artifacts/b.onnx", "source": "base", "sha256": "new"}
    m = record_stage(run, ExportStage(config={"variants": ["int8"]}, sources={"base": 3}), artifacts=[again])
    assert json.loads(run.manifest.read_text())["artifacts"] == [again, first[0]]
    assert m["stages"]["export"]["kept"] == ["a"] and m["stages"]["export"]["sources"] == {"base": 3}
    bench = m["stages"]["bench"]
    assert bench["stale"] is True and "artifacts/b.onnx" in bench["stale_reason"]
    assert (run.bench / "results.json").read_text() == "{}"
    report = (run.bench / "report.md").read_text().splitlines()
    assert report[0].startswith("> **Stale:** export at") and report[2:] == ["# Bench"]
    record_stage(run, ExportStage(config={}, sources={}), artifacts=[{**again, "sha256": "newer"}])
    assert (run.bench / "report.md").read_text().count("Stale") == 1  # the second note replaced the first
    m = record_stage(run, BenchStage(reports=["bench/results.json"]))  # a new bench is fresh ...
    assert "stale" not in m["stages"]["bench"]
    m = record_stage(run, ExportStage(config={}, sources={}), artifacts=[{**again, "sha256": "newer"}])
    assert "stale" not in m["stages"]["bench"]  # ... and an export that remade the same bytes keeps it so


def test_only_export_records_artifacts_and_a_missing_run_is_an_error(tmp_path):
    run = _new_run(tmp_path, TrainStage(config={}, precision_policy="float32", metrics={}))
    with pytest.raises(RunDirError, match="only the export stage"):
        record_stage(run, BenchStage(), artifacts=[])
    with pytest.raises(RunDirError, match="does not exist"):
        record_stage(tmp_path / "nope", BenchStage())
    assert keras_metrics(load_manifest(run)) == {}
