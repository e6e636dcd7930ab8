"""Datasets as numpy arrays, read with numpy and Pillow only (no TensorFlow).

Sources behind one ``--data`` spec:

* ``cifar10`` - the Keras CIFAR-10 (``cifar-10-batches-py``), downloaded on first use;
* ``mnist``, ``fashion_mnist`` - the Keras MNIST files (:mod:`.mnist`), 28x28 gray;
* ``synthetic`` - small learnable generated images, for tests;
* a directory ``ROOT/{train,test}/<class>/<image>`` - class folders, e.g. the shared
  ``cifar10-jpeg`` copy. Class names are the sorted folder names. Images decode with
  :func:`edgesmith.core.images.decode_image` at their own size: the decoder
  ``edgesmith predict`` uses, so EXIF rotation and transparency come out the same. A split
  whose images are all gray (Pillow modes ``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``) loads
  as 1 channel, anything else as RGB (3 channels).

Every split is ``(N, H, W, C) uint8`` raw pixels plus ``(N,) int64`` labels; the
preprocessing (scaling) lives inside the models, so nothing is normalised here.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cifar10, mnist
from .errors import DataError
from .fsutil import atomic_path
from .images import DECODER_VERSION, IMAGE_SUFFIXES, decode_image

SPLITS = ("train", "test")
NAMED_SOURCES = ("cifar10", "synthetic", *mnist.SOURCES)
# Pillow modes of single-channel images: a folder of only these loads as (N, H, W, 1)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SYNTHETIC_DEFAULTS = {"train": 2000, "test": 500}


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes:
        images: ``(N, H, W, C) uint8`` raw pixels, 0-255.
        labels: ``(N,) int64`` class indices into ``class_names``.
        class_names: label names, index = class id.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(f"images must be (N, H, W, C) uint8, got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(int(d) for d in self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DataSpec:
    """What to load: a source and the quick-run limits, recorded in each run's manifest.

    Attributes:
        source: ``"cifar10"``, ``"mnist"``, ``"fashion_mnist"``, ``"synthetic"`` or a directory path
            (stored as an absolute path).
        limit_train / limit_test: keep at most this many images (class-balanced, fixed by
            ``seed``); ``None`` keeps the whole split (synthetic: 2,000 / 500).
        seed: selects which images a limit keeps.
    """

    source: str
    limit_train: int | None = None
    limit_test: int | None = None
    seed: int = 0

    def __post_init__(self):
        for name in ("limit_train", "limit_test"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise DataError(f"--{name.replace('_', '-')} must be positive, got {v}")
        if not self.source:
            raise DataError("no dataset given (--data)")
        if self.source not in NAMED_SOURCES:
            # Record folders absolutely: later stages (export, bench) may run from elsewhere.
            object.__setattr__(self, "source", str(Path(self.source).expanduser().absolute()))

    def limit(self, split: str) -> int | None:
        return self.limit_train if split == "train" else self.limit_test

    def to_dict(self) -> dict:
        return {"source": self.source, "limit_train": self.limit_train,
                "limit_test": self.limit_test, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        return cls(d["source"], d.get("limit_train"), d.get("limit_test"), d.get("seed", 0))


def load_split(spec: DataSpec, split: str) -> Split:
    """Load one split (``"train"`` or ``"test"``) of the dataset ``spec`` names.

    Raises:
        DataError: unknown source, missing or empty directory, unreadable or
            mismatched images, fewer than two classes.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    if spec.source == "synthetic":
        out = synthetic_split(split, spec.limit(split) or SYNTHETIC_DEFAULTS[split], seed=spec.seed)
    elif spec.source == "cifar10":
        x, y, names = cifar10.read_cifar10(cifar10.ensure_cifar10(), split)
        out = _limit(Split(x, y, tuple(names)), spec.limit(split), spec.seed)
    elif spec.source in mnist.SOURCES:
        x, y, names = mnist.read_mnist(spec.source, mnist.ensure_mnist(spec.source), split)
        out = _limit(Split(x, y, names), spec.limit(split), spec.seed)
    else:
        out = _load_folder_split(Path(spec.source), split, spec.limit(split), spec.seed)
    if len(out.class_names) < 2:
        raise DataError(f"{spec.source}: a classifier needs at least 2 classes, found {len(out.class_names)}")
    return out


def load_dataset(spec: DataSpec) -> tuple[Split, Split]:
    """Load ``(train, test)``; checks both have the same classes and image shape.

    Raises:
        DataError: as :func:`load_split`, or the splits disagree.
    """
    train, test = load_split(spec, "train"), load_split(spec, "test")
    if train.class_names != test.class_names:
        raise DataError(f"{spec.source}: train classes {list(train.class_names)} differ from "
                        f"test classes {list(test.class_names)}")
    if train.image_shape != test.image_shape:
        raise DataError(f"{spec.source}: train images are {train.image_shape}, test images {test.image_shape}")
    return train, test


# --- selection -------------------------------------------------------------------------

def _balanced_indices(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` items, as evenly spread over classes as possible.

    Deterministic for a given seed; the result is shuffled (classes interleaved).
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    if limit is None or limit >= len(labels):
        return order
    # round-robin over classes in the shuffled order: rank of each item within its class
    ranks = np.empty(len(labels), dtype=np.int64)
    counts: dict[int, int] = {}
    for i in order:
        c = int(labels[i])
        ranks[i] = counts.get(c, 0)
        counts[c] = ranks[i] + 1
    by_rank = order[np.argsort(ranks[order], kind="stable")]
    return rng.permutation(by_rank[:limit])


def _limit(split: Split, limit: int | None, seed: int) -> Split:
    idx = _balanced_indices(split.labels, limit, seed)
    return Split(split.images[idx], split.labels[idx], split.class_names)


# --- class folders ---------------------------------------------------------------------

def _list_folder(root: Path, split: str) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    if not root.exists():
        raise DataError(f"data directory {root} does not exist")
    if not root.is_dir():
        raise DataError(f"--data {root} is neither one of {', '.join(NAMED_SOURCES)} nor a directory")
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{root} has no {split}/ folder (expected {root}/{{train,test}}/<class>/<image>)")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for c, name in enumerate(classes):
        found = sorted(p for p in (split_dir / name).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += found
        labels += [c] * len(found)
    if not files:
        raise DataError(f"{split_dir} contains no images in class folders")
    return files, np.asarray(labels, dtype=np.int64), tuple(classes)


def _cache_dir() -> Path:
    return Path(os.environ.get("EDGESMITH_CACHE", Path.home() / ".cache" / "edgesmith"))


def _load_folder_split(root: Path, split: str, limit: int | None, seed: int) -> Split:
    files, labels, classes = _list_folder(root, split)
    idx = _balanced_indices(labels, limit, seed)
    files = [files[i] for i in idx]
    labels = labels[idx]
    # Decoding tens of thousands of JPEGs takes a while: keep a decoded copy keyed by the
    # decoder version, the channel rule and the exact file list, sizes and modification times,
    # so any change to the data or to how it decodes is a miss.
    key = hashlib.sha256(f"decoder {DECODER_VERSION}\nchannels gray-if-all-gray\n".encode())
    for f in files:
        st = f.stat()
        key.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache = _cache_dir() / f"folder-{key.hexdigest()[:24]}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                return Split(z["images"], z["labels"], classes)
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: decode again and overwrite it
    arrays = _decode_all(files)
    first = arrays[0].shape
    for f, a in zip(files, arrays):
        if a.shape != first:
            raise DataError(f"images in {root / split} differ in size: {f} is {a.shape[1]}x{a.shape[0]}, "
                            f"{files[0]} is {first[1]}x{first[0]}")
    out = Split(np.stack(arrays), labels, classes)
    try:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, images=out.images, labels=out.labels)
    except OSError:
        pass  # a read-only home is fine; we just decode again next time
    return out


def _mode(path: Path) -> str:
    """Pillow mode of an image file from its header (``?`` when unreadable: decoding reports it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode
    except (OSError, ValueError, SyntaxError):
        return "?"


def _decode_all(files: list[Path]) -> list[np.ndarray]:
    """Every file as ``(H, W, C) uint8`` with the serving decoder at native size (training sees what
    predict sees): C = 1 when every image is gray (:data:`GRAY_MODES`), else 3."""
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        gray = all(m in GRAY_MODES for m in pool.map(_mode, files, chunksize=256))
        channels = 1 if gray else 3
        return list(pool.map(lambda f: decode_image(f, channels), files, chunksize=256))


# --- synthetic -------------------------------------------------------------------------

def synthetic_split(split: str, n: int, *, num_classes: int = 10, size: int = 32,
                    seed: int = 0) -> Split:
    """Learnable synthetic images: each class is a noisy copy of its own coarse pattern.

    Every class owns a fixed 4x4 colour pattern (mirror-symmetric, so horizontal flips
    keep the class) upsampled to ``size``; a sample adds a random brightness shift and
    Gaussian noise (sigma 40). A small CNN separates the classes in a few epochs,
    but not in zero.

    Returns:
        :class:`Split` with ``(n, size, size, 3) uint8`` images, classes ``class0..``.
    """
    protos_rng = np.random.default_rng(1234)  # patterns are the same for every split
    half = protos_rng.uniform(40, 215, size=(num_classes, 4, 2, 3))
    protos = np.concatenate([half, half[:, :, ::-1]], axis=2)
    protos = protos.repeat(size // 4, axis=1).repeat(size // 4, axis=2)
    rng = np.random.default_rng(seed + (0 if split == "train" else 10_000))
    labels = np.arange(n, dtype=np.int64) % num_classes
    rng.shuffle(labels)
    shift = rng.uniform(-25, 25, size=(n, 1, 1, 1))
    noise = rng.normal(0, 40, size=(n, size, size, 3))
    images = np.clip(protos[labels] + shift + noise, 0, 255).astype(np.uint8)
    return Split(images, labels, tuple(f"class{i}" for i in range(num_classes)))
