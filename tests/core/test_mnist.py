"""MNIST-family sources (Keras cache files, checked, read without TensorFlow) and gray class folders.

Every file is small and written here; nothing is downloaded (urlopen is made to fail)."""
from __future__ import annotations

import gzip
import hashlib
import urllib.request

import numpy as np
import pytest
from PIL import Image

from edgesmith.core import data as data_mod
from edgesmith.core import mnist
from edgesmith.core.data import DataSpec, load_dataset, load_split
from edgesmith.core.errors import DataError


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network: any download attempt fails (and is counted); Keras cache and decode cache in tmp."""
    calls = []

    def no_network(url, *a, **k):
        calls.append(url)
        raise OSError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("EDGESMITH_CACHE", str(tmp_path / "cache"))
    return calls


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _write_mnist(monkeypatch, tmp_path):
    (xtr, ytr), (xte, yte) = _digits(30, 0), _digits(20, 1)
    path = tmp_path / "keras" / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    monkeypatch.setattr(mnist, "MNIST_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return (xtr, ytr), (xte, yte)


def _write_fashion(monkeypatch, tmp_path):
    arrays = {"train": _digits(30, 2), "test": _digits(20, 3)}
    d = tmp_path / "keras" / "datasets" / "fashion-mnist"
    d.mkdir(parents=True)
    md5 = {}
    for split, (images_file, labels_file) in mnist.FASHION_FILES.items():
        for name, a in ((images_file, arrays[split][0]), (labels_file, arrays[split][1])):
            (d / name).write_bytes(gzip.compress(_idx(a)))
            md5[name] = hashlib.md5((d / name).read_bytes()).hexdigest()
    monkeypatch.setattr(mnist, "FASHION_MD5", md5)
    return arrays


def test_mnist_npz_in_the_keras_cache_loads_as_gray_28x28(monkeypatch, tmp_path, offline):
    (xtr, ytr), _ = _write_mnist(monkeypatch, tmp_path)
    train, test = load_dataset(DataSpec("mnist"))
    assert train.images.shape == (30, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (20, 28, 28, 1) and test.labels.dtype == np.int64
    assert train.class_names == tuple("0123456789")
    # same images and labels as the file (load_split shuffles the order: compare as sets of rows)
    got = {(lab, img.tobytes()) for img, lab in zip(train.images[..., 0], train.labels)}
    assert got == {(int(lab), img.tobytes()) for img, lab in zip(xtr, ytr)}
    assert offline == []  # nothing downloaded
    assert len(load_split(DataSpec("mnist", limit_test=10), "test")) == 10


def test_fashion_mnist_idx_files_load(monkeypatch, tmp_path, offline):
    arrays = _write_fashion(monkeypatch, tmp_path)
    test = load_split(DataSpec("fashion_mnist"), "test")
    assert test.images.shape == (20, 28, 28, 1)
    assert test.class_names[0] == "T-shirt_top" and len(test.class_names) == 10
    got = sorted(img.tobytes() for img in test.images[..., 0])
    assert got == sorted(img.tobytes() for img in arrays["test"][0])
    assert offline == []


def test_a_file_with_the_wrong_checksum_is_fetched_again_and_fails_offline(monkeypatch, tmp_path, offline):
    _write_mnist(monkeypatch, tmp_path)
    monkeypatch.setattr(mnist, "MNIST_SHA256", "0" * 64)  # the cached file no longer matches
    with pytest.raises(DataError, match="cannot download .*mnist.npz"):
        load_split(DataSpec("mnist"), "train")
    assert offline == [mnist.BASE_URL + "mnist.npz"]  # the Keras URL


def test_truncated_idx_file_is_refused(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(_idx(np.zeros((5, 28, 28), np.uint8))[:-10]))
    with pytest.raises(DataError, match="truncated"):
        mnist.read_idx(path)
    path.write_bytes(b"not an idx file")
    with pytest.raises(DataError, match="not an IDX"):
        mnist.read_idx(path)


def _gray_folders(root, modes=("L",), size=(28, 28)):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for c, name in enumerate(("one", "seven")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 256, size, dtype=np.uint8)
                mode = modes[i % len(modes)]
                Image.fromarray(a, "L").convert(mode).save(d / f"{i}.png")
    return root


def test_a_folder_of_gray_pngs_loads_with_one_channel(tmp_path):
    root = _gray_folders(tmp_path / "digits")
    train, test = load_dataset(DataSpec(str(root)))
    assert train.images.shape == (8, 28, 28, 1) and test.image_shape == (28, 28, 1)
    f = sorted((root / "train" / "one").iterdir())[0]
    assert any(np.array_equal(img[..., 0], np.asarray(Image.open(f))) for img in train.images)


def test_one_colour_image_makes_the_folder_rgb(tmp_path):
    root = _gray_folders(tmp_path / "mixed", modes=("L", "RGB"))
    train = load_split(DataSpec(str(root)), "train")
    assert train.images.shape == (8, 28, 28, 3)


def test_a_cache_written_under_the_old_key_is_not_reused(tmp_path):
    """Before gray folders, the key had no channel rule and the cache held 3-channel images."""
    root = _gray_folders(tmp_path / "digits")
    files, labels, _ = data_mod._list_folder(root, "train")
    idx = data_mod._balanced_indices(labels, None, 0)
    key = hashlib.sha256(f"decoder {data_mod.DECODER_VERSION}\n".encode())
    for f in (files[i] for i in idx):
        st = f.stat()
        key.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    old = data_mod._cache_dir() / f"folder-{key.hexdigest()[:24]}.npz"
    old.parent.mkdir(parents=True, exist_ok=True)
    np.savez(old, images=np.zeros((8, 28, 28, 3), np.uint8), labels=labels[idx])
    assert load_split(DataSpec(str(root)), "train").images.shape == (8, 28, 28, 1)
