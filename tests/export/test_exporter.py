import json

import numpy as np
import pytest

from edgesmith.core.errors import ConfigError, RunDirError
from edgesmith.core.rundir import RunDir, load_manifest, verify_file
from edgesmith.export import ExportConfig, export


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
