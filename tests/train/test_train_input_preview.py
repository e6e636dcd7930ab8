"""Augmentation presets, pipeline throughput, and `edgesmith data preview`."""
import numpy as np
import pytest
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.data import synthetic_split
from edgesmith.train.input import AUGMENTS, cutout, make_dataset, pipeline_throughput

from conftest import write_image_folders


@pytest.mark.parametrize("augment", AUGMENTS)
@pytest.mark.parametrize("use_cutout", [False, True])
def test_augmentation_presets_keep_shapes_and_pixel_range(augment, use_cutout):
    s = synthetic_split("train", 64)
    x, y = next(iter(make_dataset(s.images, s.labels, batch_size=64, training=True, augment=augment,
                                  use_cutout=use_cutout)))
    x = x.numpy()
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.float32 and y.shape == (64,)
    assert x.min() >= 0 and x.max() <= 255
    assert sorted(y.numpy()) == sorted(s.labels)
    if augment == "none" and not use_cutout:
        originals = {img.tobytes() for img in s.images.astype(np.float32)}
        assert all(img.tobytes() in originals for img in x)
    elif augment != "none":
        originals = {img.tobytes() for img in s.images.astype(np.float32)}
        assert sum(img.tobytes() not in originals for img in x) > 32  # most images changed


def test_default_augmentation_is_a_pad_4_crop_of_the_image_or_its_mirror():
    img = (np.arange(32 * 32 * 3).reshape(32, 32, 3) % 251 + 1).astype(np.uint8)  # no two pixels alike nearby
    x, _ = next(iter(make_dataset(np.repeat(img[None], 64, 0), np.zeros(64, np.int64), batch_size=64,
                                  training=True)))
    pad = lambda a: np.pad(a.astype(np.float32), ((4, 4), (4, 4), (0, 0)))  # noqa: E731
    sources = {"plain": pad(img), "mirrored": pad(img[:, ::-1])}
    seen = []
    for out in x.numpy():
        seen += [(name, dy, dx) for name, src in sources.items() for dy in range(9) for dx in range(9)
                 if np.array_equal(src[dy:dy + 32, dx:dx + 32], out)]
    assert len(seen) == 64  # every image is exactly one crop of one source
    assert 10 < sum(name == "mirrored" for name, _, _ in seen) < 54
    assert len({(dy, dx) for _, dy, dx in seen}) > 20  # offsets drawn per image, not per batch


def test_cutout_greys_one_square_per_image():
    x = np.zeros((4, 32, 32, 3), np.float32)
    out = cutout(x, 16).numpy()
    grey = (out[..., 0] == 128).sum(axis=(1, 2))
    assert (grey > 0).all() and (grey <= 17 * 17).all()


def test_pipeline_throughput_counts_images_after_the_warm_up_batch(monkeypatch):
    """img/s = images delivered after one untimed batch / the time they took, on a fake clock
    that advances 0.125 s per batch the pipeline delivers (so no real timing is involved)."""
    import time

    import edgesmith.train.input as input_mod

    clock = {"now": 0.0}
    asked = {}

    class FakePipeline:
        def repeat(self):
            return self

        def __iter__(self):
            while True:
                clock["now"] += 0.125
                yield np.zeros((asked["batch_size"], 32, 32, 3), np.float32), np.zeros(asked["batch_size"])

    def fake_make_dataset(images, labels, *, batch_size, training, **kw):
        asked.update(batch_size=batch_size, training=training, n=len(images), **kw)
        return FakePipeline()

    monkeypatch.setattr(input_mod, "make_dataset", fake_make_dataset)
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    s = synthetic_split("train", 256)
    # warm-up batch at 0.125 s, then 4 timed batches of 48 images until 0.5 s have passed
    assert pipeline_throughput(s.images, s.labels, batch_size=48, seconds=0.5, augment="none") == 4 * 48 / 0.5
    assert asked == {"batch_size": 48, "training": True, "n": 256, "augment": "none", "use_cutout": False}


def test_data_preview_writes_a_grid_and_counts(tmp_path):
    root = write_image_folders(tmp_path / "data", classes=("cat", "dog", "frog"), per_class=(5, 2))
    png = tmp_path / "grid.png"
    r = CliRunner().invoke(app, ["data", "preview", str(root), "--per-class", "4", "-o", str(png)])
    assert r.exit_code == 0, r.output
    assert "cat" in r.output and "frog" in r.output and "15 images" in r.output
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[1] == 3 * (64 + 2)  # one 2x-scaled row per class
    bad = CliRunner().invoke(app, ["data", "preview", str(tmp_path / "missing")])
    assert bad.exit_code == 1 and "does not exist" in bad.output
