"""One end-to-end pipeline on a few thousand real CIFAR-10 JPEGs (../shared/data/cifar10-jpeg)."""
import json

import pytest
from conftest import SHARED_DATA
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.fsutil import sha256_file

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} not present")]


def test_pipeline_on_real_cifar10_jpegs(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["pipeline", "--data", str(SHARED_DATA), "--model", "resnet8",
                                 "--epochs", "2", "--batch-size", "64", "--limit-train", "4000",
                                 "--limit-test", "1000", "--out", str(out), "--runs", "50",
                                 "--warmup", "5", "--bench-seconds", "2"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["class_names"][:3] == ["airplane", "automobile", "bird"]
    arts = {a["name"]: a for a in manifest["artifacts"]}
    assert set(arts) == {"tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"}
    for a in arts.values():
        assert sha256_file(out / a["file"]) == a["sha256"]
    results = {x["artifact"]: x for x in json.loads((out / "bench" / "results.json").read_text())["results"]}
    for name, res in results.items():
        assert res["n_test"] == 1000
        assert res["top1"] > 0.25, (name, res["top1"])  # chance is 0.10
    for q, f in (("tflite_int8", "tflite_fp32"), ("onnx_int8", "onnx_fp32")):
        assert abs(results[q]["top1"] - results[f]["top1"]) < 0.04, (q, results[q]["top1"], results[f]["top1"])
