"""Shared fixtures: isolated caches, small image folders, and one trained + exported run."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    """Decoded-dataset and Keras caches live in a temp dir, never the user's home."""
    cache = tmp_path_factory.mktemp("cache")
    old = {k: os.environ.get(k) for k in ("EDGESMITH_CACHE", "KERAS_HOME")}
    os.environ["EDGESMITH_CACHE"] = str(cache / "edgesmith")
    os.environ["KERAS_HOME"] = str(cache / "keras")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def write_image_folders(root: Path, *, classes=("cat", "dog", "frog"), per_class=(6, 3),
                        size=(32, 32), fmt="png") -> Path:
    """Make ``root/{train,test}/<class>/NNNN.<fmt>`` with distinct solid-ish colours per class."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.full((*size[::-1], 3), 40 + 80 * c, dtype=np.int16)
                img = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.{fmt}")
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A cnn trained 4 epochs on synthetic data, then exported (shared by many tests)."""
    from edgesmith.core.data import DataSpec
    from edgesmith.export import export
    from edgesmith.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "synthetic-cnn"
    config = TrainConfig(DataSpec("synthetic", limit_train=1500, limit_test=300), model="cnn",
                         epochs=4, batch_size=64, quiet=True)
    run = train(config, out)
    export(run.root)
    return run
