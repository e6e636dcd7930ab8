"""The Keras-format CIFAR-10 reader and downloader, against a locally built fake."""
import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest

from edgesmith.core import cifar10
from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import DataError

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_fake_batches(directory, per_batch=20):
    """Write a ``cifar-10-batches-py`` folder in the original format (rows of 3072 CHW bytes)."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in cifar10.TRAIN_FILES + cifar10.TEST_FILES:
        labels = [int(i % 10) for i in range(per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        data[:, 0] = np.array(labels, dtype=np.uint8) * 10  # red channel of pixel (0, 0) = label*10
        with open(directory / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, f, protocol=2)
    with open(directory / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in NAMES], b"num_vis": 3072}, f, protocol=2)
    return directory


def test_reads_the_keras_cache_without_downloading():
    cache = cifar10.keras_cache_dir()  # KERAS_HOME points into a temp dir (conftest)
    make_fake_batches(cache / cifar10.DIRNAME)
    train = load_split(DataSpec("cifar10"), "train")
    test = load_split(DataSpec("cifar10"), "test")
    assert train.images.shape == (100, 32, 32, 3) and len(test) == 20
    assert train.class_names == tuple(NAMES)
    # channel-first rows became HWC pixels: pixel (0, 0) red = label * 10
    np.testing.assert_array_equal(train.images[:, 0, 0, 0], train.labels * 10)
    limited = load_split(DataSpec("cifar10", limit_train=30), "train")
    assert np.bincount(limited.labels).tolist() == [3] * 10


def _archive(tmp_path):
    make_fake_batches(tmp_path / "src" / cifar10.DIRNAME)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / cifar10.DIRNAME, arcname=cifar10.DIRNAME)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_downloads_verifies_and_extracts(tmp_path):
    archive, digest = _archive(tmp_path)
    cache = tmp_path / "cache"
    out = cifar10.ensure_cifar10(cache, origin=archive.as_uri(), sha256=digest)
    x, y, names = cifar10.read_cifar10(out, "test")
    assert x.shape == (20, 32, 32, 3) and names == NAMES
    assert (cache / "cifar-10-batches-py.tar.gz").is_file()


def test_wrong_checksum_leaves_nothing(tmp_path):
    archive, _ = _archive(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="wrong sha256"):
        cifar10.ensure_cifar10(cache, origin=archive.as_uri(), sha256="0" * 64)
    assert os.listdir(cache) == []


def test_unreachable_origin_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot download"):
        cifar10.ensure_cifar10(tmp_path, origin=(tmp_path / "missing.tar.gz").as_uri())


def test_pickle_that_would_run_code_is_refused(tmp_path):
    d = make_fake_batches(tmp_path / cifar10.DIRNAME)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(DataError, match="refusing to load"):
        cifar10.read_cifar10(d, "test")
