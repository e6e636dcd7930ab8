"""Bring your own model: models made outside edgesmith, the way tutorials make them, imported,
exported, benchmarked and run; code in model files refused unless trusted; bad files rejected."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.data import DataSpec, synthetic_split
from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import RunDir, load_manifest
from edgesmith.core.stages import keras_metrics
from edgesmith.export import ExportConfig, export
from edgesmith.importer import ModelFileError, ModelMismatchError, UnsafeModelError, import_model, resolve_run
from edgesmith.runtime import load
from edgesmith.tfshim import keras

from conftest import write_image_folders

DATA = DataSpec("synthetic", limit_train=300, limit_test=200)
TFLITE_ONLY = ExportConfig(formats=("tflite",))
cli = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """Model files written outside edgesmith (plain tf_keras / Keras 3 code, no edgesmith helpers).

    One tutorial-style Sequential CNN is trained the classic way (pixels / 255 outside the
    model, logits out, from_logits loss); its trained layers are reused in the other files.
    """
    d = tmp_path_factory.mktemp("foreign")
    keras.utils.set_random_seed(0)
    train = synthetic_split("train", 600)
    seq = keras.Sequential([
        keras.layers.Conv2D(8, 3, activation="relu", input_shape=(32, 32, 3)),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    seq.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    seq.fit(train.images / 255.0, train.labels, epochs=5, batch_size=32, verbose=0)
    seq.save(d / "tutorial.h5")  # the classic end-of-tutorial file

    # functional, preprocessing and softmax inside, native .keras format
    inp = keras.Input((32, 32, 3))
    out = keras.layers.Softmax()(seq(keras.layers.Rescaling(1 / 255)(inp)))
    keras.Model(inp, out).save(d / "functional.keras")

    # a 64x64-input SavedModel expecting [-1, 1] pixels (MobileNet-style)
    inp = keras.Input((64, 64, 3))
    x = keras.layers.AveragePooling2D(2)(inp)
    x = keras.layers.Rescaling(0.5, offset=0.5)(x)  # [-1, 1] -> [0, 1], what the trained layers expect
    keras.Model(inp, seq(x)).save(d / "savedmodel")

    # a Lambda layer (Python bytecode in the file)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0, name="my_lambda")(inp)
    lam = keras.Model(inp, seq(x))
    lam.save(d / "lambda.keras")
    lam.save(d / "lambda.h5")
    lam.save(d / "lambda_sm")

    # outputs in reverse class order (to be matched through a labels file)
    inp = keras.Input((32, 32, 3))
    y = keras.layers.Rescaling(1 / 255)(inp)
    y = keras.layers.Lambda(lambda t: t[:, ::-1], name="rev")(seq(y))
    keras.Model(inp, y).save(d / "reversed.h5")
    (d / "reversed.txt").write_text("\n".join(f"class{i}" for i in reversed(range(10))) + "\n")
    return d


def _agree(run, names=("model_fp32.tflite", "model_int8.tflite")) -> float:
    test = synthetic_split("test", 200)
    preds = [load(run.root / "artifacts" / n, device="cpu").predict(test.images).argmax(1) for n in names]
    return float((preds[0] == preds[1]).mean())


def test_tutorial_h5_end_to_end_via_cli(foreign, tmp_path):
    """.h5 + --preprocess scale01 + logits detected -> export -> bench -> predict, float and int8 agreeing."""
    run_dir = tmp_path / "run"
    r = cli.invoke(app, ["export", str(foreign / "tutorial.h5"), "--data", "synthetic", "--preprocess", "scale01",
                         "--out", str(run_dir), "--verify-size", "200"])
    assert r.exit_code == 0, r.output
    assert "imported" in r.output
    m = json.loads((run_dir / "manifest.json").read_text())
    src = m["model"]["source"]
    assert src["format"] == "h5" and src["outputs"] == "logits" and src["preprocess"] == "scale01"
    assert src["sha256"] and src["bytes"] == (foreign / "tutorial.h5").stat().st_size
    assert m["dataset"]["class_names"] == [f"class{i}" for i in range(10)]
    assert json.loads((run_dir / "metrics.json").read_text())["top1"] > 0.9
    arts = {a["name"]: a for a in m["artifacts"]}
    assert {"tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"} <= set(arts)
    assert arts["tflite_int8"]["fidelity"]["top1"] > 0.9

    r = cli.invoke(app, ["bench", str(run_dir), "--targets", "litert-cpu", "--threads", "1", "--batch", "1",
                         "--runs", "10", "--warmup", "1", "--limit-test", "100"])
    assert r.exit_code == 0, r.output
    results = json.loads((run_dir / "bench" / "results.json").read_text())["results"]
    top1 = {x["artifact"]: x["top1"] for x in results}
    assert top1["tflite_int8"] > 0.9 and abs(top1["tflite_int8"] - top1["tflite_fp32"]) <= 0.03

    test = synthetic_split("test", 6)
    for i, img in enumerate(test.images):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    r = cli.invoke(app, ["predict", str(run_dir / "artifacts" / "model_int8.tflite"),
                         *[str(tmp_path / f"{i}.png") for i in range(6)], "--json", "--target", "cpu"])
    assert r.exit_code == 0, r.output
    preds = json.loads(r.stdout)["predictions"]
    top = {Path(p["path"]).name: p["top_k"][0]["label"] for p in preds}
    assert sum(top[f"{i}.png"] == f"class{y}" for i, y in enumerate(test.labels)) >= 5  # labels travel along


def test_functional_keras_and_savedmodel_with_resize(foreign, tmp_path):
    """.keras (preprocessing inside, probabilities out) and a 64x64 [-1, 1] SavedModel (resize + minus1to1)."""
    run = import_model(foreign / "functional.keras", data=DATA, out=tmp_path / "keras")
    m = load_manifest(run)
    src = m["model"]["source"]
    assert src["format"] == "keras" and src["outputs"] == "probabilities" and src["resize"] is None
    # an import stage, no train stage; the Keras model's metrics are found all the same
    assert set(m["stages"]) == {"import"} and m["run"] == "keras"
    assert keras_metrics(m) == json.loads(run.metrics.read_text()) == m["stages"]["import"]["metrics"]
    export(run.root, TFLITE_ONLY)
    assert _agree(run) >= 0.95
    tunes = load_manifest(run)["stages"]["export"]["config"]
    assert tunes["prune_tune"]["label_smoothing"] == tunes["qat_tune"]["label_smoothing"] == 0.0  # no recipe known

    run = import_model(foreign / "savedmodel", data=DATA, out=tmp_path / "sm", preprocess="minus1to1")
    m = json.loads(run.manifest.read_text())
    assert m["model"]["source"]["resize"]["to"] == [64, 64]
    assert m["model"]["input"]["shape"] == [None, 32, 32, 3]  # raw pixels at the data's size
    assert json.loads(run.metrics.read_text())["top1"] > 0.9
    export(run.root, TFLITE_ONLY)
    assert load(run.root / "artifacts" / "model_int8.tflite").input_spec.shape == (32, 32, 3)
    assert _agree(run) >= 0.95


def test_keras3_keras_file_and_its_savedmodel_export_both_import(foreign, tmp_path):
    import keras as keras3  # Keras 3, as a user's own code would use it (tests only)

    inp = keras3.Input((32, 32, 3))
    x = keras3.layers.Rescaling(1 / 255)(inp)
    x = keras3.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras3.layers.MaxPooling2D()(x)
    x = keras3.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras3.layers.MaxPooling2D()(x)
    x = keras3.layers.Flatten()(x)
    model = keras3.Model(inp, keras3.layers.Dense(10)(x))
    model.set_weights(keras.models.load_model(foreign / "tutorial.h5", compile=False).get_weights())
    model.save(tmp_path / "k3.keras")
    run = import_model(tmp_path / "k3.keras", data=DATA, out=tmp_path / "k3run")  # a Keras 3 child loads it
    assert json.loads(run.manifest.read_text())["model"]["source"]["format"] == "keras3"
    assert json.loads(run.metrics.read_text())["top1"] > 0.9

    model.export(str(tmp_path / "k3_export"), verbose=False)
    run = import_model(tmp_path / "k3_export", data=DATA, out=tmp_path / "run")
    m = json.loads(run.manifest.read_text())
    assert m["model"]["source"]["format"] == "raw_savedmodel" and m["model"]["source"]["outputs"] == "logits"
    assert json.loads(run.metrics.read_text())["top1"] > 0.9
    export(run.root, TFLITE_ONLY)
    assert _agree(run) >= 0.95


def test_lambda_refused_unless_trusted(foreign, tmp_path):
    for name in ("lambda.keras", "lambda.h5", "lambda_sm"):
        with pytest.raises(UnsafeModelError, match="my_lambda"):
            import_model(foreign / name, data=DATA, out=tmp_path / name)
        assert not (tmp_path / name).exists()
    line = _one_line_error(cli.invoke(app, ["export", str(foreign / "lambda.h5"), "--data", "synthetic",
                                            "--out", str(tmp_path / "cli")]))
    assert "my_lambda" in line and "--trust-model-code" in line

    run = import_model(foreign / "lambda.keras", data=DATA, out=tmp_path / "trusted", trust_model_code=True)
    assert json.loads(run.manifest.read_text())["model"]["source"]["trusted_code"] == ["'my_lambda' (Lambda)"]
    assert json.loads(run.metrics.read_text())["top1"] > 0.9
    export(run.root, TFLITE_ONLY)  # a fresh safe-mode load of the run's model must still work
    assert _agree(run) >= 0.95


class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2 * x


def test_custom_object_refused_unless_trusted_savedmodel(tmp_path):
    inp = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(Doubler(name="doubler")(inp))
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    model.save(tmp_path / "custom.keras")
    model.save(tmp_path / "custom_sm")
    for name in ("custom.keras", "custom_sm"):
        with pytest.raises(UnsafeModelError, match="'doubler' \\(Doubler\\).*code edgesmith will not import"):
            import_model(tmp_path / name, data=DATA, out=tmp_path / "run")
    # trusted, a SavedModel's custom layer runs as its traced graph (the serving signature)
    run = import_model(tmp_path / "custom_sm", data=DATA, out=tmp_path / "run", trust_model_code=True)
    assert json.loads(run.manifest.read_text())["model"]["source"]["format"] == "raw_savedmodel"
    export(run.root, TFLITE_ONLY)
    images = synthetic_split("test", 200).images
    got = load(run.root / "artifacts" / "model_fp32.tflite", device="cpu").predict(images)
    np.testing.assert_allclose(got, model.predict(images.astype(np.float32), verbose=0), atol=1e-4)


def test_preprocess_layers_match_their_definitions():
    from edgesmith.importer.importer import IMAGENET_MEAN, IMAGENET_STD, _preprocess_layers

    px = np.array([[[[0.0, 127.5, 255.0]]]], dtype=np.float32)
    want = {"scale01": px / 255, "minus1to1": px / 127.5 - 1,
            "imagenet": (px / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)}
    for name, expected in want.items():
        (layer,) = _preprocess_layers(name)
        np.testing.assert_allclose(layer(px).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert _preprocess_layers("none") == []


def test_labels_file_reorders_and_mismatches_are_clear(foreign, tmp_path):
    run = import_model(foreign / "reversed.h5", data=DATA, out=tmp_path / "ok",
                       labels_file=foreign / "reversed.txt", trust_model_code=True)
    assert json.loads(run.metrics.read_text())["top1"] > 0.9  # re-ordered to the dataset's classes
    assert json.loads(run.manifest.read_text())["model"]["source"]["labels_reordered"] is True

    three = write_image_folders(tmp_path / "three")
    with pytest.raises(ModelMismatchError, match="predicts 10 classes but .* has 3"):
        import_model(foreign / "tutorial.h5", data=DataSpec(str(three)), out=tmp_path / "m1")
    (tmp_path / "l.txt").write_text("a\nb\n")
    with pytest.raises(ModelMismatchError, match="names 2 classes"):
        import_model(foreign / "tutorial.h5", data=DATA, out=tmp_path / "m2", labels_file=tmp_path / "l.txt")
    inp = keras.Input((28, 28, 1))  # an MNIST-style grayscale model on RGB data
    keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(inp))).save(tmp_path / "gray.keras")
    with pytest.raises(ModelMismatchError, match="takes 1-channel images but synthetic has 3-channel"):
        import_model(tmp_path / "gray.keras", data=DATA, out=tmp_path / "m3")
    assert not any((tmp_path / n).exists() for n in ("m1", "m2", "m3"))


@pytest.mark.parametrize("name", ["functional.keras", "tutorial.h5"])
def test_truncated_or_corrupt_file_one_line_error(foreign, tmp_path, name):
    data = (foreign / name).read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        import_model(bad, data=DATA, out=tmp_path / "run")
    line = _one_line_error(cli.invoke(app, ["export", str(bad), "--data", "synthetic", "--out",
                                            str(tmp_path / "run")]))
    assert "corrupt or truncated" in line
    (tmp_path / "junk.keras").write_bytes(os.urandom(2000))
    _one_line_error(cli.invoke(app, ["export", str(tmp_path / "junk.keras"), "--data", "synthetic",
                                     "--out", str(tmp_path / "run")]))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "junk.keras"])  # nothing half-written


def test_pipeline_with_a_model_file_skips_training(foreign, tmp_path):
    """`pipeline --model-file` imports instead of training, then exports and benchmarks."""
    run_dir = tmp_path / "run"
    r = cli.invoke(app, ["pipeline", "--data", "synthetic", "--limit-train", "300", "--limit-test", "200",
                         "--model-file", str(foreign / "tutorial.h5"), "--preprocess", "scale01",
                         "--out", str(run_dir), "--runs", "10", "--warmup", "1", "--bench-batch", "1",
                         "--calibration-size", "64"])
    assert r.exit_code == 0, r.output
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["model"]["source"]["format"] == "h5" and "import" in m["stages"]
    assert not (run_dir / "history.csv").exists()  # nothing was trained
    assert {"import", "export", "bench"} <= set(m["stages"]) and "train" not in m["stages"]
    results = json.loads((run_dir / "bench" / "results.json").read_text())["results"]
    assert {x["artifact"] for x in results} == {"tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"}
    assert all(x["top1"] > 0.9 for x in results)


def test_resolve_run_passes_runs_through_and_imports_model_files(foreign, tmp_path):
    run, imported = resolve_run(foreign / "tutorial.h5", data="synthetic", preprocess="scale01",
                                out=tmp_path / "run", limit_train=300, limit_test=200)
    assert imported and run.root == tmp_path / "run"
    assert load_manifest(run)["dataset"]["limit_test"] == 200
    assert json.loads(run.metrics.read_text())["n_test"] == 200
    again, imported = resolve_run(run.root)
    assert again == RunDir(run.root) and not imported
    with pytest.raises(ConfigError, match="already a run directory; data, labels, out and the image options"):
        resolve_run(run.root, data="synthetic")
    with pytest.raises(ConfigError, match="is a model file, not a run directory: give data to import it"):
        resolve_run(foreign / "tutorial.h5")
    with pytest.raises(ConfigError, match="is a model file, not a run directory"):
        resolve_run(foreign / "savedmodel")
    assert resolve_run(tmp_path / "nothing") == (RunDir(tmp_path / "nothing"), False)  # export says why
    with pytest.raises(ConfigError, match="already exists"):
        resolve_run(foreign / "tutorial.h5", data="synthetic", out=run.root.parent / "run")
