"""CIFAR-10 in the Keras format (``cifar-10-batches-py``), read without TensorFlow.

Same source, checksum and cache directory as ``keras.datasets.cifar10.load_data``
(``$KERAS_HOME/datasets`` or ``~/.keras/datasets``), so a copy Keras already
downloaded is reused, and a device without TensorFlow can still read it.
Source: Krizhevsky (2009), https://www.cs.toronto.edu/~kriz/cifar.html
"""
from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from .errors import DataError
from .fsutil import atomic_path, fetch_checked

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
DIRNAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)


def keras_cache_dir() -> Path:
    """Return Keras's dataset cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays: a tampered file cannot run code."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module.split(".")[0] == "numpy" and name in self._ALLOWED) or (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {e}") from None


def ensure_cifar10(cache_dir: str | os.PathLike | None = None, *, origin: str = ORIGIN,
                   sha256: str = SHA256) -> Path:
    """Return the ``cifar-10-batches-py`` directory, downloading it if absent.

    Side effects: when the directory is missing, downloads ``origin`` (163 MB) into
    ``cache_dir``, checks its sha256 and extracts it; the archive is kept like Keras does.

    Raises:
        DataError: the download fails, its checksum differs, or the archive is malformed.
    """
    root = Path(cache_dir) if cache_dir else keras_cache_dir()
    target = root / DIRNAME
    if all((target / f).is_file() for f in TRAIN_FILES + TEST_FILES + ("batches.meta",)):
        return target
    archive = root / f"{DIRNAME}.tar.gz"
    fetch_checked(archive, origin, sha256)
    try:
        with atomic_path(target) as tmp, tarfile.open(archive, "r:gz") as tar:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, **kwargs)
            inner = tmp / DIRNAME
            if not inner.is_dir():
                raise DataError(f"{archive} does not contain {DIRNAME}/")
            # move the inner folder's files up so tmp itself becomes the dataset folder
            for p in inner.iterdir():
                p.rename(tmp / p.name)
            inner.rmdir()
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"cannot extract {archive}: {e}") from None
    return target


def read_cifar10(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one split of a ``cifar-10-batches-py`` directory.

    Returns:
        images ``(N, 32, 32, 3) uint8`` (N = 50,000 train / 10,000 test for the real
        set), labels ``(N,) int64`` in 0-9, and the 10 class names from ``batches.meta``.

    Raises:
        DataError: a file is missing or is not a CIFAR-10 batch.
    """
    directory = Path(directory)
    files = {"train": TRAIN_FILES, "test": TEST_FILES}.get(split)
    if files is None:
        raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
    xs, ys = [], []
    for name in files:
        batch = _unpickle(directory / name)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        except (KeyError, ValueError) as e:
            raise DataError(f"{directory / name} is not a CIFAR-10 batch: {e}") from None
        ys.append(labels)
    meta = _unpickle(directory / "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", [])]
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys), names
