"""Weight clustering after pruning (TF-MOT collaborative optimization) on a tiny cnn."""
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import RunDir, load_manifest, verify_file
from edgesmith.export import ExportConfig, export
from edgesmith.export.finetune import FineTune
from edgesmith.runtime import load

CLUSTERS = 8
QUICK = FineTune(epochs=1, batch_size=64, limit=512)


def _kernels(path) -> list[np.ndarray]:
    """Constant rank-4 tensors (conv kernels, (O, H, W, I)) stored in a TFLite file."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    types = {0: np.float32, 9: np.int8}
    out = []
    for t in model.subgraphs[0].tensors:
        buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        if buf is not None and len(buf) and t.type in types and len(t.shape) == 4:
            out.append(np.frombuffer(bytes(bytearray(buf)), dtype=types[t.type]).reshape(t.shape))
    return out


@pytest.fixture(scope="module")
def clustered(trained_run, tmp_path_factory):
    dest = tmp_path_factory.mktemp("cluster") / "run"
    shutil.copytree(trained_run.root, dest, ignore=shutil.ignore_patterns("artifacts", "bench"))
    run = RunDir(dest)
    records = export(run, ExportConfig(formats=("tflite",), variants=("int8",), prune=0.5, cluster=CLUSTERS,
                                       qat=True, prune_tune=QUICK, cluster_tune=QUICK,
                                       qat_tune=FineTune(epochs=1, batch_size=64, learning_rate=2e-5, limit=256),
                                       calibration_size=64, verify_size=200))
    return run, {r["name"]: r for r in records}


def test_clustered_files_are_written_load_and_agree(clustered):
    run, arts = clustered
    assert list(arts) == ["tflite_fp32", "tflite_int8", "pruned_tflite_fp32", "pruned_tflite_int8",
                          "clustered_tflite_fp32", "clustered_tflite_int8", "qat_tflite_int8",
                          "pruned_qat_tflite_int8", "clustered_qat_tflite_int8"]
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    for name in ("clustered_tflite_fp32", "clustered_tflite_int8", "clustered_qat_tflite_int8"):
        a = arts[name]
        verify_file(run, a)
        assert a["source"] == name.split("_tflite")[0] and a["float_parent"] == "tflite_fp32"
        assert a["fidelity"]["top1_agreement"] >= 0.9, name
        assert a["fidelity"]["source_agreement"] >= 0.9, name
        assert load(run.root / a["file"], device="cpu").predict(x).shape == (4, 10)


def test_kernels_hold_few_values_and_keep_the_pruned_zeros(clustered):
    run, arts = clustered
    info = load_manifest(run)["stages"]["export"]["sources"]["clustered"]
    assert info["from"] == "pruned" and info["clusters"] == CLUSTERS
    assert info["layer_unique_values"] and all(2 <= n <= CLUSTERS for n in info["layer_unique_values"].values())
    # preserve_sparsity: the zeros made by pruning are still there after clustering
    assert all(0.45 <= s <= 0.55 for s in info["layer_sparsity"].values())
    for name in ("clustered_tflite_int8", "clustered_qat_tflite_int8"):
        assert 0.45 <= arts[name]["weight_sparsity"] <= 0.55, name
    # the float file keeps <= CLUSTERS values per kernel (the first one has the Rescaling folded
    # in: a constant factor, same count); the per-channel int8 files <= CLUSTERS per output channel
    fp32 = [k for k in _kernels(run.root / arts["clustered_tflite_fp32"]["file"]) if k.size > 64]
    assert fp32 and all(len(np.unique(k)) <= CLUSTERS for k in fp32)
    for name in ("clustered_tflite_int8", "clustered_qat_tflite_int8"):
        kernels = [k for k in _kernels(run.root / arts[name]["file"]) if k.dtype == np.int8 and k.size > 64]
        assert len(kernels) == len(fp32), name
        for k in kernels:
            assert max(len(np.unique(k[c])) for c in range(k.shape[0])) <= CLUSTERS, name
    # ... whereas the pruned-only int8 file has far more values per channel
    pruned = [k for k in _kernels(run.root / arts["pruned_tflite_int8"]["file"]) if k.dtype == np.int8 and k.size > 64]
    assert max(len(np.unique(k[c])) for k in pruned for c in range(k.shape[0])) > 2 * CLUSTERS
    assert arts["clustered_tflite_int8"]["gzip_bytes"] < arts["pruned_tflite_int8"]["gzip_bytes"]


@pytest.mark.parametrize("value", ["1", "257", "0"])
def test_bad_cluster_count_fails_in_one_line_and_writes_nothing(trained_run, tmp_path, value):
    shutil.copytree(trained_run.root, tmp_path / "run", ignore=shutil.ignore_patterns("artifacts", "bench"))
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--cluster", value])
    assert result.exit_code == 1, result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert lines == [f"error: --cluster must be in 2..256 clusters, got {value}"]
    assert not (tmp_path / "run" / "artifacts").exists()
    with pytest.raises(ConfigError, match="2..256"):
        ExportConfig(cluster=int(value))


def test_plan_adds_clustered_artifacts_after_pruned_ones_and_help_documents_cluster():
    plan = ExportConfig(formats=("tflite", "onnx"), variants=("int8",), cluster=16, qat=True).plan()
    names = [p.name for p in plan]
    assert names[names.index("onnx_int8") + 1:] == [
        "clustered_tflite_fp32", "clustered_tflite_int8", "clustered_onnx_fp32", "clustered_onnx_int8",
        "qat_tflite_int8", "qat_onnx_int8_from_tflite", "clustered_qat_tflite_int8",
        "clustered_qat_onnx_int8_from_tflite"]
    assert {p.file for p in plan if p.source == "clustered"} == {
        "model_clustered_fp32.tflite", "model_clustered_int8.tflite", "model_clustered_fp32.onnx",
        "model_clustered_int8.onnx"}
    assert ExportConfig(cluster=16).to_dict()["cluster"] == 16
    out = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "200"}).output
    assert "--cluster" in out and "2..256" in out
