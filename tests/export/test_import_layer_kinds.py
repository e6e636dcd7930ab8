"""Every standard Keras layer kind in an imported model.

Layers that act only in training (augmentation, dropout, noise) are taken out at import, for
tf_keras and Keras 3 files alike (``.keras``, ``.h5``, SavedModel), and the manifest says which;
``RandomCrop`` of tf_keras is frozen into the resize it does at inference. ``Normalization``
with adapted statistics, ``Resizing`` and ``CenterCrop`` stay, and the exported TFLite and ONNX
files (float and int8) compute what the model computes when called with ``training=False``.

Two tiny CNNs, one per Keras, hold every kind at once: trained without the training-only layers,
then rebuilt around the same trained layers with all of them inserted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from edgesmith.export import ExportConfig, export
from edgesmith.importer import ModelFileError, import_model, import_summary
from edgesmith.importer.training_only import COMMON, KERAS3_ONLY, TF_KERAS_FROZEN, TF_KERAS_ONLY
from edgesmith.runtime import load

from edgesmith.core.data import DataSpec, synthetic_split

DATA = DataSpec("synthetic", limit_train=300, limit_test=200)
ALL_FORMATS = ExportConfig(calibration_size=64, verify_size=200)  # TFLite + ONNX, fp32 + int8
FLOAT_TFLITE = ExportConfig(formats=("tflite",), variants=("fp32",), verify_size=200)
TEST = synthetic_split("test", 200)

# Keras 3 in its own process, as a user's script would be (tf_keras and Keras 3 do not mix)
_KERAS3 = textwrap.dedent('''
    import os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras, numpy as np
    from edgesmith.core.data import synthetic_split
    from edgesmith.importer.training_only import KERAS3_ONLY, COMMON
    missing = [n for n in KERAS3_ONLY + COMMON if not hasattr(keras.layers, n)]
    assert not missing, f"not in keras.layers: {missing}"
    keras.utils.set_random_seed(0)
    out, L = sys.argv[1], keras.layers
    train = synthetic_split("train", 600)
    norm = L.Normalization(name="norm")
    norm.adapt(train.images[:200, 10:22, 10:22].astype("float32"))  # about what it sees after resize + crop
    conv, dense = L.Conv2D(8, 3, activation="relu", name="conv"), L.Dense(10, name="logits")

    def body(x, noise=()):
        x = norm(L.CenterCrop(12, 12, name="center_crop")(L.Resizing(16, 16, name="resize")(x)))
        x = conv(x)
        for layer in noise[:3]:
            x = layer(x)
        x = L.GlobalAveragePooling2D(name="gap")(x)
        for layer in noise[3:]:
            x = layer(x)
        return dense(x)

    def noise():
        return [L.GaussianNoise(0.1), L.SpatialDropout2D(0.1), L.GaussianDropout(0.1), L.AlphaDropout(0.1),
                L.Dropout(0.1), L.ActivityRegularization(0.01)]

    inp = keras.Input((32, 32, 3))
    plain = keras.Model(inp, body(inp))
    plain.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain.fit(train.images.astype("float32"), train.labels, epochs=10, batch_size=32, verbose=0)
    augment = keras.Sequential([L.RandomFlip(), L.RandomRotation(0.1), L.RandomZoom(0.1), L.RandomTranslation(0.1, 0.1),
                                L.RandomContrast(0.1), L.RandomCrop(32, 32)], name="augment")
    x = augment(inp)
    common = keras.Model(inp, body(x, noise()))
    common.save(out + "/common.h5")  # Keras 3 cannot write RandomBrightness and newer layers to .h5
    args = {"RandomBrightness": (0.1,), "RandomHue": (0.1,), "RandomSaturation": (0.1,), "RandomSharpness": (0.1,),
            "RandomShear": ((0.0, 0.1),), "RandomColorDegeneration": (0.1,), "RandomPosterization": (4,),
            "Solarization": (0.1, 0.1)}
    for name in ("RandomBrightness", *KERAS3_ONLY):
        if name != "RandomCrop":  # already in augment
            x = getattr(L, name)(*args.get(name, ()))(x)
    every = keras.Model(inp, body(x, noise()))
    every.save(out + "/every.keras")
    flips = keras.Model(inp, L.Dense(10)(L.Flatten()(L.RandomFlip()(inp))))
    flips.export(out + "/exported", verbose=False)  # serving traced in training mode: flips at random
    images = synthetic_split("test", 200).images.astype("float32")
    np.save(out + "/every.npy", every.predict(images, verbose=0))
    np.save(out + "/common.npy", common.predict(images, verbose=0))
''')


@pytest.fixture(scope="module")
def keras3_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("keras3_kinds")
    done = subprocess.run([sys.executable, "-c", _KERAS3, str(d)], capture_output=True, text=True, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    return d


@pytest.fixture(scope="module")
def tf_keras_files(tmp_path_factory):
    """The same model in tf_keras, saved as .keras, .h5 and SavedModel, with its outputs at inference."""
    from edgesmith.tfshim import keras

    d = tmp_path_factory.mktemp("tf_keras_kinds")
    keras.utils.set_random_seed(0)
    L = keras.layers
    train = synthetic_split("train", 600)
    norm = L.Normalization(name="norm")
    norm.adapt(train.images[:200, 10:22, 10:22].astype("float32"))
    conv, dense = L.Conv2D(8, 3, activation="relu", name="conv"), L.Dense(10, name="logits")

    def body(x, noise=()):
        x = norm(L.CenterCrop(12, 12, name="center_crop")(L.Resizing(16, 16, name="resize")(x)))
        x = conv(x)
        for layer in noise[:3]:
            x = layer(x)
        x = L.GlobalAveragePooling2D(name="gap")(x)
        for layer in noise[3:]:
            x = layer(x)
        return dense(x)

    inp = keras.Input((32, 32, 3))
    plain = keras.Model(inp, body(inp))
    plain.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain.fit(train.images.astype("float32"), train.labels, epochs=10, batch_size=32, verbose=0)
    augment = keras.Sequential([L.RandomFlip(), L.RandomRotation(0.1), L.RandomZoom(0.1),
                                L.RandomTranslation(0.1, 0.1), L.RandomContrast(0.1), L.RandomBrightness(0.1),
                                L.RandomHeight(0.1), L.RandomWidth(0.1)], name="augment")
    x = L.RandomCrop(24, 24, name="random_crop")(augment(inp))  # at inference: centre crop + resize to 24x24
    noise = [L.GaussianNoise(0.1), L.SpatialDropout2D(0.1), L.GaussianDropout(0.1), L.AlphaDropout(0.1),
             L.Dropout(0.1), L.ActivityRegularization(0.01)]
    every = keras.Model(inp, body(x, noise))
    every.save(d / "every.keras")
    every.save(d / "every.h5")
    every.save(d / "every_savedmodel")
    np.save(d / "every.npy", every.predict(TEST.images.astype(np.float32), verbose=0))
    return d


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _removed(run) -> list[dict]:
    return json.loads(run.manifest.read_text())["stages"]["import"]["removed_layers"]


def _check_artifacts(run, reference: np.ndarray, names: tuple[str, ...]) -> None:
    """Each exported file's outputs against the original model's at inference (logits -> softmax)."""
    want = _softmax(reference)
    for name in names:
        got = load(run.root / "artifacts" / name).predict(TEST.images)
        if "fp32" in name:
            np.testing.assert_allclose(got, want, atol=1e-4, err_msg=name)
        else:  # int8: the same answers on nearly every image
            assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9, name


ALL_FILES = ("model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8.onnx")
KERAS3_EVERY = {*COMMON, *KERAS3_ONLY} - {"SpatialDropout1D", "SpatialDropout3D"}
KERAS3_H5 = {*COMMON, "RandomCrop"} - {"SpatialDropout1D", "SpatialDropout3D", "RandomBrightness"}
TF_KERAS_EVERY = {*COMMON, *TF_KERAS_ONLY, *TF_KERAS_FROZEN} - {"SpatialDropout1D", "SpatialDropout3D"}


def test_keras3_keras_file_loses_every_training_only_layer_and_exports_all_formats(keras3_files, tmp_path):
    run = import_model(keras3_files / "every.keras", data=DATA, out=tmp_path / "run")
    removed = _removed(run)
    assert {r["class"] for r in removed} == KERAS3_EVERY
    assert all(r["as"] == "removed" for r in removed)
    assert {"random_flip", "random_rotation", "aug_mix"} <= {r["name"] for r in removed}
    export(run.root, ALL_FORMATS)
    _check_artifacts(run, np.load(keras3_files / "every.npy"), ALL_FILES)
    summary = import_summary("every.keras", run).splitlines()
    assert len(summary) == 2 and summary[1].startswith(f"took out {len(removed)} layers that act only in training")
    assert "'random_flip' (RandomFlip)" in summary[1]


def test_keras3_h5_file_loses_its_training_only_layers_and_exports(keras3_files, tmp_path):
    run = import_model(keras3_files / "common.h5", data=DATA, out=tmp_path / "run")
    assert {r["class"] for r in _removed(run)} == KERAS3_H5
    export(run.root, FLOAT_TFLITE)
    _check_artifacts(run, np.load(keras3_files / "common.npy"), ("model_fp32.tflite",))


def test_a_savedmodel_that_augments_when_served_is_refused_in_one_line(keras3_files, tmp_path):
    with pytest.raises(ModelFileError, match="different outputs for the same images") as e:
        import_model(keras3_files / "exported", data=DATA, out=tmp_path / "run")
    assert "\n" not in str(e.value) and "import the .keras file instead" in str(e.value)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def tf_keras_run(tf_keras_files, tmp_path_factory):
    return import_model(tf_keras_files / "every.keras", data=DATA, out=tmp_path_factory.mktemp("tfk") / "run")


def test_tf_keras_keras_file_loses_every_training_only_layer_and_exports_all_formats(tf_keras_files, tf_keras_run):
    removed = _removed(tf_keras_run)
    assert {r["class"] for r in removed} == TF_KERAS_EVERY
    crop, = (r for r in removed if r["class"] == "RandomCrop")
    assert crop == {"name": "random_crop", "class": "RandomCrop", "as": "Resizing(24, 24, crop_to_aspect_ratio=True)"}
    assert all(r["as"] == "removed" for r in removed if r is not crop)
    export(tf_keras_run.root, ALL_FORMATS)
    _check_artifacts(tf_keras_run, np.load(tf_keras_files / "every.npy"), ALL_FILES)
    assert "-> Resizing(24, 24, crop_to_aspect_ratio=True) as at inference" in import_summary("x", tf_keras_run)


@pytest.mark.parametrize("name", ["every.h5", "every_savedmodel"])
def test_tf_keras_h5_and_savedmodel_lose_the_same_layers_and_export(tf_keras_files, tf_keras_run, tmp_path, name):
    run = import_model(tf_keras_files / name, data=DATA, out=tmp_path / "run")
    assert _removed(run) == _removed(tf_keras_run)
    export(run.root, FLOAT_TFLITE)
    _check_artifacts(run, np.load(tf_keras_files / "every.npy"), ("model_fp32.tflite",))


def test_a_model_without_training_only_layers_records_none_and_imagenet_preprocessing_exports_to_onnx(tmp_path):
    from edgesmith.importer.importer import IMAGENET_MEAN, IMAGENET_STD
    from edgesmith.tfshim import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    plain = keras.Model(inp, keras.layers.Dense(10)(x))
    plain.save(tmp_path / "plain.keras")
    run = import_model(tmp_path / "plain.keras", data=DATA, out=tmp_path / "run", preprocess="imagenet")
    assert _removed(run) == []
    assert len(import_summary("plain.keras", run).splitlines()) == 1
    # the preprocessing is graph constants: one ONNX input, the images (a Normalization layer made three)
    export(run.root, ExportConfig(formats=("onnx",), variants=("fp32",), verify_size=200))
    px = TEST.images.astype(np.float32)
    want = plain.predict((px / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), verbose=0)
    _check_artifacts(run, want, ("model_fp32.onnx",))


def test_a_rebuild_that_changes_what_the_model_computes_is_caught(monkeypatch):
    from edgesmith.importer import training_only
    from edgesmith.tfshim import keras

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Dropout(0.5)(keras.layers.Rescaling(1 / 255, name="scale")(inp))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    rebuilt, removed = training_only.inference_form(keras, model, keras3=False)
    assert [r["class"] for r in removed] == ["Dropout"]
    assert training_only.check_same_at_inference(model, rebuilt) == 0.0
    monkeypatch.setattr(training_only, "COMMON", (*training_only.COMMON, "Rescaling"))  # wrongly an identity
    wrong, _ = training_only.inference_form(keras, model, keras3=False)
    with pytest.raises(training_only.InferenceFormError, match="differs from the model at inference"):
        training_only.check_same_at_inference(model, wrong)
