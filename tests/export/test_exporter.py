import json

import pytest

from edgesmith.core.errors import ConfigError, RunDirError
from edgesmith.core.rundir import RunDir, load_manifest, save_manifest, verify_file
from edgesmith.export import ARTIFACTS, ExportConfig, export


def test_every_artifact_is_recorded_and_matches_its_sha256(trained_run):
    manifest = load_manifest(trained_run)
    names = [a["name"] for a in manifest["artifacts"]]
    assert names == ["tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"]
    for art in manifest["artifacts"]:
        path = verify_file(trained_run, art)
        assert art["bytes"] == path.stat().st_size > 1000
        assert art["made_from"] == "model.keras"
    assert sorted(p.name for p in trained_run.artifacts.iterdir()) == sorted(
        ["model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx"])


def test_artifacts_agree_with_the_keras_model(trained_run):
    arts = {a["name"]: a for a in load_manifest(trained_run)["artifacts"]}
    for name in ("tflite_fp32", "onnx_fp32"):
        assert arts[name]["fidelity"]["top1_agreement"] >= 0.99
        assert arts[name]["fidelity"]["max_abs_error"] < 1e-3
    for name in ("tflite_int8", "onnx_int8"):
        f = arts[name]["fidelity"]
        assert f["top1_agreement"] >= 0.9
        assert abs(f["top1"] - f["reference_top1"]) < 0.05


def test_int8_tflite_takes_raw_uint8_pixels(trained_run):
    art = next(a for a in load_manifest(trained_run)["artifacts"] if a["name"] == "tflite_int8")
    assert art["input"]["dtype"] == "uint8"
    assert art["input"]["quantization"]["scale"] == pytest.approx(1.0)
    assert art["input"]["quantization"]["zero_point"] == 0
    assert art["float_parent"] == "tflite_fp32"


def test_onnx_files_carry_their_labels(trained_run):
    import onnx

    proto = onnx.load(str(trained_run.artifacts / "model_int8.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["edgesmith.labels"])[:2] == ["class0", "class1"]
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)


def test_export_of_a_run_without_model_fails_cleanly(tmp_path):
    with pytest.raises(RunDirError, match="no manifest.json"):
        export(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_export_config_rejects_impossible_combinations():
    with pytest.raises(ConfigError, match="unknown artifact"):
        ExportConfig(artifacts=("tflite_fp64",))
    with pytest.raises(ConfigError, match="onnx_int8 is quantized from onnx_fp32"):
        ExportConfig(artifacts=("onnx_int8",))


def test_artifact_names_and_files_come_from_the_backends_declarations():
    from edgesmith.export.config import BACKENDS

    declared = {f"{v.format}_{v.suffix}": (v.format, v.precision, f"model_{v.suffix}.{v.format}")
                for variants in BACKENDS.values() for v in variants}
    assert {name: rec[:3] for name, rec in ARTIFACTS.items()} == declared
    assert list(ARTIFACTS) == ["tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int8_micro",
                               "onnx_fp32", "onnx_dynamic", "onnx_int8", "onnx_int8_from_tflite"]
    plan = ExportConfig(variants=("int8",), prune=0.5, qat=True).plan()
    assert [(p.name, p.file, p.precision, p.float_parent) for p in plan] == [
        ("tflite_fp32", "model_fp32.tflite", "fp32", None),
        ("tflite_int8", "model_int8.tflite", "int8", "tflite_fp32"),
        ("onnx_fp32", "model_fp32.onnx", "fp32", None),
        ("onnx_int8", "model_int8.onnx", "int8", "onnx_fp32"),
        ("pruned_tflite_fp32", "model_pruned_fp32.tflite", "fp32", "tflite_fp32"),
        ("pruned_tflite_int8", "model_pruned_int8.tflite", "int8", "tflite_fp32"),
        ("pruned_onnx_fp32", "model_pruned_fp32.onnx", "fp32", "onnx_fp32"),
        ("pruned_onnx_int8", "model_pruned_int8.onnx", "int8", "onnx_fp32"),
        ("qat_tflite_int8", "model_qat_int8.tflite", "int8", "tflite_fp32"),
        ("qat_onnx_int8_from_tflite", "model_qat_int8_from_tflite.onnx", "int8", "onnx_fp32"),
        ("pruned_qat_tflite_int8", "model_pruned_qat_int8.tflite", "int8", "tflite_fp32"),
        ("pruned_qat_onnx_int8_from_tflite", "model_pruned_qat_int8_from_tflite.onnx", "int8", "onnx_fp32")]
    with pytest.raises(ConfigError, match="onnx_int8_from_tflite is quantized from onnx_fp32"):
        ExportConfig(artifacts=("tflite_int8", "onnx_int8_from_tflite"))


def test_re_export_replaces_only_its_files_and_marks_the_bench_stale(trained_run, tmp_path):
    import shutil

    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run.root, run.root)
    run.bench.mkdir(exist_ok=True)
    (run.bench / "results.json").write_text("{}")
    (run.artifacts / "notes.txt").write_text("mine")  # a file of the user's
    manifest = load_manifest(run)
    manifest["stages"]["bench"] = {"reports": ["bench/results.json"]}
    save_manifest(run, manifest)
    before = {a["name"]: a for a in manifest["artifacts"]}

    # remakes one file and adds one: the added file makes the old bench results stale (a remade file only
    # when its bytes changed)
    records = export(run, ExportConfig(artifacts=("tflite_fp32", "tflite_fp16"), calibration_size=16, verify_size=50))
    manifest = load_manifest(run)
    assert [r["name"] for r in records] == ["tflite_fp32", "tflite_fp16"]
    # the other format's files and entries stay, unchanged and still verifiable; the new one took its place
    assert manifest["artifacts"] == records + [before[n] for n in ("tflite_int8", "onnx_fp32", "onnx_int8")]
    for a in manifest["artifacts"]:
        verify_file(run, a)
    assert (run.artifacts / "notes.txt").read_text() == "mine"
    assert (run.bench / "results.json").read_text() == "{}"  # kept, and said to be stale
    reason = manifest["stages"]["bench"]["stale_reason"]
    assert manifest["stages"]["bench"]["stale"] and "artifacts/model_fp16.tflite" in reason
    assert ("artifacts/model_fp32.tflite" in reason) == (records[0]["sha256"] != before["tflite_fp32"]["sha256"])
    recorded = manifest["stages"]["export"]
    assert recorded["config"]["artifacts"] == ["tflite_fp32", "tflite_fp16"] and recorded["config"]["verify_size"] == 50
    assert recorded["kept"] == ["tflite_int8", "onnx_fp32", "onnx_int8"]
    assert recorded["sources"]["base"]["model"] == "model.keras" and "finished" in recorded
    assert manifest["stages"]["train"] == load_manifest(trained_run)["stages"]["train"]  # upstream untouched
