"""MNIST and Fashion-MNIST in the Keras download format, read without TensorFlow.

The same URLs, file names and cache directory as ``keras.datasets.mnist.load_data`` and
``keras.datasets.fashion_mnist.load_data`` (``$KERAS_HOME/datasets`` or
``~/.keras/datasets``), so a copy Keras already downloaded is reused and a device without
TensorFlow can read it:

* ``mnist`` - ``datasets/mnist.npz`` (arrays ``x_train``, ``y_train``, ``x_test``,
  ``y_test``), checked against Keras's sha256. Source: LeCun et al. (1998),
  http://yann.lecun.com/exdb/mnist/
* ``fashion_mnist`` - ``datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
  (gzipped IDX files), checked against the MD5 sums the dataset's authors publish (Keras
  checks none). Source: Xiao, Rasul & Vollgraf (2017), https://github.com/zalandoresearch/fashion-mnist

Both give ``(N, 28, 28, 1) uint8`` images (60,000 train / 10,000 test) and ``(N,) int64``
labels 0-9.
"""
from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

import numpy as np

from .cifar10 import keras_cache_dir
from .errors import DataError
from .fsutil import fetch_checked

SOURCES = ("mnist", "fashion_mnist")
BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
MNIST_FILE = "mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FASHION_DIR = "fashion-mnist"
# split -> (images file, labels file); checksums: the MD5 sums in the Fashion-MNIST README
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_MD5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
               "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
               "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
               "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
CLASS_NAMES = {"mnist": tuple(str(d) for d in range(10)),
               "fashion_mnist": ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                 "Sneaker", "Bag", "Ankle_boot")}


def ensure_mnist(name: str, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """The checked files of dataset ``name`` in the Keras cache, downloading what is missing.

    Side effects: downloads a missing or damaged file into ``cache_dir`` (default
    :func:`keras_cache_dir`): ``mnist.npz`` 11 MB, Fashion-MNIST's four files 30 MB.

    Returns:
        ``[mnist.npz]`` for ``mnist``; the four ``.gz`` files (train images, train labels,
        test images, test labels) for ``fashion_mnist``.

    Raises:
        DataError: unknown ``name``, a failed download, or a checksum that differs.
    """
    root = Path(cache_dir) if cache_dir else keras_cache_dir()
    if name == "mnist":
        return [fetch_checked(root / MNIST_FILE, BASE_URL + MNIST_FILE, MNIST_SHA256, "sha256")]
    if name == "fashion_mnist":
        return [fetch_checked(root / FASHION_DIR / f, BASE_URL + f, FASHION_MD5[f], "md5")
                for split in ("train", "test") for f in FASHION_FILES[split]]
    raise DataError(f"unknown MNIST-family dataset {name!r}; expected one of {', '.join(SOURCES)}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """A gzipped (or plain) IDX file of unsigned bytes as an array of its declared shape.

    Raises:
        DataError: not an IDX ``ubyte`` file, or fewer bytes than its header declares.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset, count = 4 + 4 * ndim, int(np.prod(dims))
    if len(raw) < offset + count:
        raise DataError(f"{path} is truncated: {len(raw) - offset} bytes of data, header says {count}")
    return np.frombuffer(raw, np.uint8, count, offset).reshape(dims)


def read_mnist(name: str, files: list[Path], split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """One split of ``name`` from the files :func:`ensure_mnist` returned.

    Returns:
        images ``(N, 28, 28, 1) uint8``, labels ``(N,) int64`` in 0-9, the 10 class names.

    Raises:
        DataError: unknown split, unreadable files, or images and labels that disagree.
    """
    if split not in FASHION_FILES:
        raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
    if name == "mnist":
        key = "train" if split == "train" else "test"
        try:
            with np.load(files[0], allow_pickle=False) as z:
                x, y = z[f"x_{key}"], z[f"y_{key}"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"{files[0]} is not the Keras mnist.npz: {e}") from None
    else:
        i = 0 if split == "train" else 2
        x, y = read_idx(files[i]), read_idx(files[i + 1])
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{name} {split}: images {x.shape} and labels {y.shape} do not match")
    return np.ascontiguousarray(x.astype(np.uint8)[..., None]), y.astype(np.int64), CLASS_NAMES[name]
