"""Keras 3 model files in: ``.keras`` and ``.h5`` written by Keras 3 (in a subprocess, as a user's
own code would) import through a Keras 3 child process and a SavedModel, export to float and PTQ
int8, and keep the Lambda / custom-object rules."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from edgesmith.export import ExportConfig, export
from edgesmith.importer import (
    ModelFileError,
    UnsafeModelError,
    import_model,
    inspect_model_file,
)
from edgesmith.importer.keras3 import NEEDS_TF_KERAS, require_tf_keras
from edgesmith.runtime import load

from edgesmith.core.data import DataSpec, synthetic_split
from edgesmith.core.errors import ConfigError

DATA = DataSpec("synthetic", limit_train=300, limit_test=200)

_MAKE = textwrap.dedent('''
    import os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras, numpy as np
    from edgesmith.core.data import synthetic_split
    keras.utils.set_random_seed(0)
    out = sys.argv[1]
    train = synthetic_split("train", 600)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train.images.astype("float32"), train.labels, epochs=5, batch_size=32, verbose=0)
    model.save(out + "/cnn.keras")
    model.save(out + "/cnn.h5")
    test = synthetic_split("test", 200).images.astype("float32")
    np.save(out + "/reference.npy", np.asarray(model.predict(test, verbose=0)))
    lam = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Lambda(lambda t: t * 2, name="my_lambda"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    lam.save(out + "/lambda.keras")

    @keras.saving.register_keras_serializable(package="mine")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    cus = keras.Sequential([keras.Input((32, 32, 3)), Doubler(name="doubler"), keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(10)])
    cus.save(out + "/custom.keras")
    print(keras.__version__)
''')


@pytest.fixture(scope="module")
def keras3_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("keras3")
    done = subprocess.run([sys.executable, "-c", _MAKE, str(d)], capture_output=True, text=True, check=False,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("3.")
    return d


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("name, kind", [("cnn.keras", "keras3"), ("cnn.h5", "keras3_h5")])
def test_keras3_file_imports_and_exports_float_and_int8(keras3_files, tmp_path, name, kind):
    assert inspect_model_file(keras3_files / name).kind == kind
    run = import_model(keras3_files / name, data=DATA, out=tmp_path / "run")
    source = json.loads(run.manifest.read_text())["model"]["source"]
    assert source["format"] == kind and source["keras_version"].startswith("3.")
    assert source["outputs"] == "logits" and "Keras 3 child process" in source["route"]
    assert json.loads(run.metrics.read_text())["top1"] > 0.9

    export(run.root, ExportConfig(formats=("tflite",), calibration_size=64))
    images = synthetic_split("test", 200).images
    want = _softmax(np.load(keras3_files / "reference.npy"))  # Keras 3's own outputs
    got = load(run.root / "artifacts" / "model_fp32.tflite").predict(images)
    np.testing.assert_allclose(got, want, atol=1e-4)
    int8 = load(run.root / "artifacts" / "model_int8.tflite").predict(images)
    assert (int8.argmax(1) == want.argmax(1)).mean() >= 0.95


def test_keras3_code_and_custom_objects_are_refused_unless_trusted(keras3_files, tmp_path):
    with pytest.raises(UnsafeModelError, match="my_lambda"):
        import_model(keras3_files / "lambda.keras", data=DATA, out=tmp_path / "a")
    with pytest.raises(UnsafeModelError, match="'doubler' \\(Doubler\\)"):
        import_model(keras3_files / "custom.keras", data=DATA, out=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # trusted: the Lambda runs in the Keras 3 child only; the run holds its SavedModel graph
    run = import_model(keras3_files / "lambda.keras", data=DATA, out=tmp_path / "c", trust_model_code=True)
    assert json.loads(run.manifest.read_text())["model"]["source"]["trusted_code"][0] == "'my_lambda' (Lambda)"


def test_a_file_keras3_cannot_load_is_one_clear_error(keras3_files, tmp_path):
    bad = tmp_path / "broken.keras"
    import zipfile

    with zipfile.ZipFile(keras3_files / "cnn.keras") as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.namelist():
            if not item.endswith(".h5"):  # drop the weights
                dst.writestr(item, src.read(item))
    with pytest.raises(ModelFileError, match="Keras 3 could not load it"):
        import_model(bad, data=DATA, out=tmp_path / "run")


def test_prune_qat_cluster_say_they_need_a_tf_keras_model(keras3_files, tmp_path):
    run = import_model(keras3_files / "cnn.keras", data=DATA, out=tmp_path / "run")
    manifest = json.loads(run.manifest.read_text())
    for config in (ExportConfig(prune=0.5), ExportConfig(structured_2_4=True), ExportConfig(qat=True),
                   ExportConfig(cluster=16)):
        with pytest.raises(ConfigError, match="need a tf_keras") as e:
            require_tf_keras(manifest, config)
        assert "\n" not in str(e.value) and str(e.value).startswith(NEEDS_TF_KERAS[:20])
    require_tf_keras(manifest, ExportConfig())  # float + PTQ are fine
    with pytest.raises(ConfigError, match="drop qat, or import"):  # export itself refuses, before any work
        export(run.root, ExportConfig(formats=("tflite",), qat=True, calibration_size=64))
    assert not run.artifacts.exists()
