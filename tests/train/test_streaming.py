"""Streaming a folder from its files: the same batches as in memory, no whole-split decode,
validation from ROOT/val, unreadable files skipped and reported."""
from pathlib import Path

import numpy as np
import pytest

from edgesmith.core import data as core_data
from edgesmith.core.data import DataSpec, list_split
from edgesmith.core.images import decode_image
from edgesmith.train import TrainConfig
from edgesmith.train.datasets import prepare
from edgesmith.train.input import FileDecoder, make_dataset, make_file_dataset, should_stream
from conftest import write_image_folders


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = write_image_folders(tmp_path_factory.mktemp("stream") / "d", per_class=(8, 3), size=(20, 14))
    for c in ("cat", "dog", "frog"):  # ROOT/val exists: validation comes from it
        write_image_folders(root / "tmpval", classes=(c,), per_class=(2, 0), size=(20, 14))
    (root / "tmpval" / "train").rename(root / "val")
    return root


def test_streamed_batches_are_the_in_memory_batches_for_the_same_seed(folder):
    spec = DataSpec(str(folder), image_size=(16, 16))
    fs = list_split(spec, "train")
    images = np.stack([decode_image(f, fs.channels, (16, 16), spec.resize) for f in fs.files])
    for training in (True, False):
        kw = dict(batch_size=5, training=training, seed=3, augment="none")
        memory = list(make_dataset(images, fs.labels, **kw).take(3))
        streamed = list(make_file_dataset(fs.files, fs.labels, FileDecoder(fs.channels, (16, 16)), **kw).take(3))
        for (xm, ym), (xs, ys) in zip(memory, streamed):
            np.testing.assert_array_equal(xm.numpy(), xs.numpy())
            np.testing.assert_array_equal(ym.numpy(), ys.numpy())
        if training:  # shuffled: not simply the file order
            assert not np.array_equal(memory[0][1].numpy(), fs.labels[:5])


def test_a_streamed_run_never_decodes_a_whole_split_and_validates_on_root_val(folder, monkeypatch):
    config = TrainConfig(DataSpec(str(folder), image_size=(16, 16)), stream=True, quiet=True)
    memory = prepare(TrainConfig(config.data, stream=False))

    def refuse(*a, **kw):
        raise AssertionError("load_split called while streaming")

    monkeypatch.setattr(core_data, "load_split", refuse)
    said = []
    data = prepare(config, log=said.append)
    assert data.streamed and all(s.streamed for s in (data.fit, data.val, data.test))
    assert "streamed from the files (--stream" in said[0] and "validation: ROOT/val" in said[0]
    assert (len(data.fit), len(data.val), len(data.test)) == (24, 6, 9)  # all of train, val from ROOT/val
    np.testing.assert_array_equal(data.fit.labels, memory.fit.labels)  # same images, same order
    assert data.fit.image_shape == memory.fit.image_shape == (16, 16, 3)


def test_without_root_val_both_modes_hold_out_the_same_images(tmp_path):
    root = write_image_folders(tmp_path / "d", per_class=(10, 2), size=(16, 16))
    config = TrainConfig(DataSpec(str(root)), val_split=0.2, quiet=True)
    streamed, memory = prepare(TrainConfig(config.data, val_split=0.2, stream=True)), prepare(config)
    assert not memory.streamed and streamed.val_from.startswith("20% held out")
    np.testing.assert_array_equal(streamed.val.labels, memory.val.labels)
    x = np.concatenate([b[0].numpy() for b in streamed.val.dataset(batch_size=4, training=False)])
    np.testing.assert_array_equal(x, memory.val.split.images)


def test_an_unreadable_file_is_skipped_and_reported_while_streaming(tmp_path, capsys):
    root = write_image_folders(tmp_path / "d", per_class=(4, 2), size=(16, 16))
    from PIL import Image

    bad = root / "train" / "dog" / "0002.jpg"  # a JPEG cut in half: its header lists, its pixels do not decode
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad, quality=95)
    bad.write_bytes(bad.read_bytes()[:len(bad.read_bytes()) * 3 // 4])
    (root / "train" / "dog" / "0002.png").unlink()
    data = prepare(TrainConfig(DataSpec(str(root)), stream=True, val_split=0.0, quiet=True))
    labels = np.concatenate([b[1].numpy() for b in data.fit.dataset(batch_size=5, training=False)])
    assert len(labels) == 11 and list(data.fit.kept_labels()) == list(labels)
    assert "truncated" in data.stream_failures()[str(bad)]
    assert f"skipped {bad}" in capsys.readouterr().err
    assert [f for f, _ in core_data.decode_failures(DataSpec(str(root)), "train")] == [bad]  # for the data report


def test_the_memory_budget_decides_when_not_asked():
    assert should_stream(50_000, (96, 96, 3), available=2 * 2**30)[0]  # 1.29 GiB > 25% of 2 GiB
    stream, why = should_stream(50_000, (96, 96, 3), available=16 * 2**30)
    assert not stream and "1.29 GiB decoded, within the budget of 4.00 GiB" in why
    assert should_stream(10, (8, 8, 1), asked=True) == (True, "--stream (0.00 GiB decoded)")
