"""Data-aware augmentation: ``--augment auto`` (the default) never flips gray digit/character images,
says what it chose and why, and records it; gray class folders train, export to int8 and predict."""
from __future__ import annotations

import json

import numpy as np
import pytest
from edgesmith.train.config import TrainConfig, default, resolve_augment
from PIL import Image

from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError


def test_lenet5_gets_its_own_adam_rate():
    spec = DataSpec("synthetic")
    assert TrainConfig(spec, model="lenet5").learning_rate == 1e-2
    assert TrainConfig(spec, model="cnn").learning_rate == 3e-3
    assert TrainConfig(spec, model="lenet5", learning_rate=1e-3).learning_rate == 1e-3


def test_auto_is_the_default_and_resolves_from_the_data():
    assert default("augment") == "auto"
    assert resolve_augment("auto", (28, 28, 1))[0] == "shift"
    assert "gray" in resolve_augment("auto", (28, 28, 1))[1]
    assert resolve_augment("auto", (32, 32, 3))[0] == "default"
    assert resolve_augment("auto", (28, 28, 3), "mnist")[0] == "shift"  # the dataset-level hint
    assert resolve_augment("rotate-shift", (28, 28, 1)) == ("rotate-shift", "set with --augment")  # the user wins
    with pytest.raises(ConfigError, match="unknown augmentation"):
        resolve_augment("flip", (28, 28, 1))


def _augmented(augment: str, channels: int) -> np.ndarray:
    from edgesmith.train.input import make_dataset

    # bright left third, dark right: a flip moves the bright part right, a shift of <= 2 px does not
    img = np.zeros((28, 28, channels), np.uint8)
    img[:, :9] = 255
    images = np.repeat(img[None], 256, axis=0)
    ds = make_dataset(images, np.zeros(256, np.int64), batch_size=256, training=True, augment=augment)
    return next(iter(ds))[0].numpy()


def test_shift_moves_gray_images_a_little_and_never_flips():
    out = _augmented("auto", channels=1)
    left, right = out[:, :, :9].mean(axis=(1, 2, 3)), out[:, :, -9:].mean(axis=(1, 2, 3))
    assert (left > 150).all() and (right == 0).all()  # no image flipped
    bright_cols = (out[:, 14, :, 0] == 255).sum(axis=1)
    assert len(set(bright_cols.tolist())) > 1 and bright_cols.min() >= 7  # shifted, by <= 2 px
    # the colour default still flips about half of them
    rgb = _augmented("auto", channels=3)
    flipped = (rgb[:, :, -9:].mean(axis=(1, 2, 3)) > 150).mean()
    assert 0.3 < flipped < 0.7


def _gray_digit_folders(root, n_train=40, n_test=10):
    """Two gray classes: a vertical or a horizontal bar (28x28 'L' PNGs)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(("bar_v", "bar_h")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 40, (28, 28)).astype(np.uint8)
                k = rng.integers(8, 20)
                if c == 0:
                    a[4:24, k:k + 4] = 230
                else:
                    a[k:k + 4, 4:24] = 230
                Image.fromarray(a, "L").save(d / f"{i:03d}.png")
    return root


def test_gray_folder_trains_exports_int8_and_predicts_a_gray_png(tmp_path, capsys):
    from edgesmith.export import ExportConfig, export
    from edgesmith.runtime import load
    from edgesmith.runtime.predict import predict_files
    from edgesmith.train import train

    root = _gray_digit_folders(tmp_path / "bars")
    config = TrainConfig(DataSpec(str(root)), model="lenet5", epochs=6, batch_size=16, val_split=0.0,
                         tensorboard=False)
    run = train(config, tmp_path / "run")
    assert "augmentation: shift (28x28 gray images" in capsys.readouterr().err  # said in the training log
    recorded = json.loads(run.config.read_text())
    assert recorded["augment"] == "auto" and recorded["augment_used"]["preset"] == "shift"
    stage = json.loads(run.manifest.read_text())["stages"]["train"]["config"]
    assert stage["augment_used"]["preset"] == "shift"
    assert json.loads(run.manifest.read_text())["dataset"]["image_shape"] == [28, 28, 1]

    export(run.root, ExportConfig(formats=("tflite",), calibration_size=32))
    runner = load(run.root / "artifacts" / "model_int8.tflite")
    assert tuple(runner.input_spec.shape) == (28, 28, 1)
    files = sorted((root / "test" / "bar_v").iterdir()) + sorted((root / "test" / "bar_h").iterdir())
    predictions, failures = predict_files(runner, files, k=1)
    assert failures == []
    top1 = [p["top_k"][0]["label"] for p in predictions]
    assert np.mean([t == f.parent.name for t, f in zip(top1, files)]) >= 0.9
