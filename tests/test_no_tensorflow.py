"""A device installs edgesmith without the [train] extra: runtime and benchmarks must work."""
from conftest import HAS_ORT, python_without

TENSORFLOW = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tf2onnx")


def _run(code: str):
    return python_without(TENSORFLOW, code)


def test_runtime_benchmarks_and_cli_import_without_tensorflow():
    r = _run("""
        import edgesmith.runtime, edgesmith.benchmarks, edgesmith.cli, edgesmith.core.data, edgesmith.optimize.tune
        print("ok", "tensorflow" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", "False"]


def test_predict_and_bench_run_without_tensorflow(tiny_run):
    files = ("model_int8.tflite", "model_int8.onnx") if HAS_ORT else ("model_int8.tflite",)
    r = _run(f"""
        import numpy as np
        from edgesmith.runtime import load
        from edgesmith.benchmarks import BenchConfig, bench_run
        from edgesmith.core.data import synthetic_split
        x = synthetic_split("test", 8).images
        for f in {files!r}:
            assert load({str(tiny_run.artifacts)!r} + "/" + f).predict(x).shape == (8, 10)
        rep = bench_run({str(tiny_run.root)!r}, BenchConfig(runs=10, warmup=1, limit_test=50, threads=(1,), batches=(1,), seconds=0.5, rounds=2))
        print(len(rep["results"]), "tensorflow" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(2 * len(files)), "False"]  # the fp32 and int8 file of each format


def test_training_without_the_extra_names_the_fix():
    """The config part of the train stage works anywhere; training itself says what to install."""
    r = _run("""
        from edgesmith.core.data import DataSpec
        from edgesmith.core.errors import BackendUnavailable
        from edgesmith.train import TrainConfig, preset_config
        print(TrainConfig(DataSpec("synthetic"), model="cnn").model, preset_config("fast", DataSpec("synthetic")).model)
        try:
            from edgesmith.train import train
        except BackendUnavailable as e:
            print(e)
        print("tensorflow" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "cnn resnet8" and lines[-1] == "False"
    assert "pip install 'edgesmith[train]'" in lines[1], r.stdout


def test_predict_cli_runs_without_tensorflow_from_the_model_file_alone(tiny_run, tmp_path):
    import shutil

    from PIL import Image

    model = shutil.copy(tiny_run.artifacts / "model_fp32.tflite", tmp_path / "m.tflite")
    Image.new("RGB", (300, 200), (200, 30, 30)).save(tmp_path / "red.webp")
    r = _run(f"""
        import json
        from typer.testing import CliRunner
        from edgesmith.cli import app
        r = CliRunner().invoke(app, ["predict", {str(model)!r}, {str(tmp_path / "red.webp")!r}, "--json"])
        doc = json.loads(r.stdout)
        print(r.exit_code, doc["predictions"][0]["top_k"][0]["label"][:5], "tensorflow" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "class", "False"]
