"""Datasets as numpy arrays, read with numpy and Pillow only (no TensorFlow).

Sources behind one ``--data`` spec:

* ``cifar10`` - the Keras CIFAR-10 (``cifar-10-batches-py``), downloaded on first use;
* ``mnist``, ``fashion_mnist`` - the Keras MNIST files (:mod:`.mnist`), 28x28 gray;
* ``synthetic`` - small learnable generated images, for tests;
* a directory of class folders: ``ROOT/{train,test}/<class>/``, ``ROOT/{train,val,test}/<class>/``
  or ``ROOT/<class>/`` alone (split here, stratified and seeded), read recursively; see
  :mod:`.folders` for the layouts, the split rule and which files are skipped. Class names are
  the sorted folder names. Images decode with :func:`edgesmith.core.images.decode_image` at
  ``DataSpec.image_size`` by ``DataSpec.resize`` (or at their own size when all agree): the
  decoder ``edgesmith predict`` uses, so EXIF rotation, transparency and the resize policy come
  out the same. A split whose images are all gray (Pillow modes ``1``, ``L``, ``LA``, ``I``,
  ``I;16``, ``F``) loads as 1 channel, anything else as RGB (3 channels). Files that cannot be
  read are skipped, each named with its reason on stderr and in the run's data report
  (:mod:`.datareport`), unless ``DataSpec.strict``.

Every split is ``(N, H, W, C) uint8`` raw pixels plus ``(N,) int64`` labels; the
preprocessing (scaling) lives inside the models, so nothing is normalised here.
"""
from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import cifar10, configdict, folders, mnist
from .errors import DataError
from .folders import DEFAULT_TEST_SPLIT, GRAY_MODES, SPLITS, FileSplit  # noqa: F401  re-exported
from .fsutil import atomic_path
from .images import DECODER_VERSION, IMAGE_SUFFIXES, RESIZE_MODES, check_resize, decode_image, resize_array  # noqa: F401

NAMED_SOURCES = ("cifar10", "synthetic", *mnist.SOURCES)
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
    files: tuple[Path, ...] | None = field(default=None, compare=False)
    skipped: tuple[tuple[Path, str], ...] = field(default=(), compare=False)

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
            ``seed``); ``None`` keeps the whole split (synthetic: 2,000 / 500). ``limit_train``
            also limits ``val``.
        seed: selects which images a limit keeps.
        image_size: ``(H, W)`` every image is decoded to, px; ``None`` keeps the images' own
            size, which must then agree (named sources: their native size).
        resize: how an image of another aspect ratio reaches ``image_size``: ``squash``,
            ``crop`` or ``pad`` (:data:`RESIZE_MODES`, see :mod:`.images`).
        test_split: share of each class held out as ``test`` when the folder is
            ``ROOT/<class>/`` alone; ``None`` is :data:`DEFAULT_TEST_SPLIT` (0.2) there.
        split_seed: seeds that split; kept apart from ``seed`` so that a later stage drawing
            another subset (calibration) sees the same train/test split.
        strict: refuse the dataset on any unreadable image instead of skipping it.

    Manifests written before a field existed load with its default.
    """

    source: str
    limit_train: int | None = None
    limit_test: int | None = None
    seed: int = 0
    image_size: tuple[int, int] | None = None
    resize: str = "squash"
    test_split: float | None = None
    split_seed: int = 0
    strict: bool = False

    def __post_init__(self):
        for name in ("limit_train", "limit_test"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise DataError(f"{name} must be positive, got {v}", field=f"DataSpec.{name}")
        if not self.source:
            raise DataError("no dataset given (source is empty)", field="DataSpec.source")
        if self.source not in NAMED_SOURCES:
            # Record folders absolutely: later stages (export, bench) may run from elsewhere.
            object.__setattr__(self, "source", str(Path(self.source).expanduser().absolute()))
        if self.image_size is not None:
            size = tuple(int(v) for v in self.image_size)
            if len(size) != 2 or min(size) < 1:
                raise DataError(f"image_size must be H or HxW with positive sides, got {self.image_size}",
                                field="DataSpec.image_size")
            object.__setattr__(self, "image_size", size)
        check_resize(self.resize)
        if self.test_split is not None and not 0 < self.test_split < 1:
            raise DataError(f"test_split must be a fraction in (0, 1), got {self.test_split}",
                            field="DataSpec.test_split")

    def limit(self, split: str) -> int | None:
        return self.limit_test if split == "test" else self.limit_train

    def to_dict(self) -> dict:
        """The fields as JSON-ready values (:func:`edgesmith.core.configdict.to_dict`)."""
        return configdict.to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        """The spec :meth:`to_dict` wrote; other keys (a manifest's ``class_names``...) are ignored,
        missing fields keep their defaults."""
        return configdict.from_dict(cls, d)


def parse_image_size(text: str) -> tuple[int, int]:
    """``"64"`` -> ``(64, 64)``, ``"48x64"`` -> ``(48, 64)`` (``H x W``).

    Raises:
        DataError: anything else, or a side below 1.
    """
    parts = text.lower().replace("×", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"image_size must be H or HxW in pixels, e.g. 64 or 48x64, got {text!r}",
                        field="DataSpec.image_size")
    return size


def has_split(spec: DataSpec, split: str) -> bool:
    """True when the dataset provides ``split``: always ``train``/``test``; ``val`` only for a
    folder with ``ROOT/val/``."""
    if spec.source in NAMED_SOURCES:
        return split in ("train", "test")
    return folders.has_split(spec.source, split)


def list_split(spec: DataSpec, split: str) -> FileSplit:
    """The files of one split of a folder dataset, without decoding pixels (for streaming).

    The limit of ``spec`` applies (class-balanced); the order is shuffled by ``spec.seed``, the
    order :func:`load_split` uses. Decode each file with ``decode_image(f, fs.channels, spec.image_size, spec.resize)``;
    a file that fails to decode raises :class:`DataError` there and should be skipped and
    reported like :func:`load_split` does.

    Returns:
        A :class:`~.folders.FileSplit` (files, ``(N,) int64`` labels, class names, channels,
        skipped files with reasons).

    Raises:
        DataError: a named source (not files), or as :func:`.folders.list_folder_split`;
            with ``spec.strict``, an unreadable image among the files.
    """
    if spec.source in NAMED_SOURCES:
        raise DataError(f"source {spec.source} is not a folder of image files", field="DataSpec.source")
    fs = folders.list_folder_split(spec.source, split, test_split=spec.test_split, split_seed=spec.split_seed)
    if spec.strict:
        bad = [(f, why) for f, why in fs.skipped if why.startswith(("empty file", "not an image Pillow",
                                                                   "unreadable header"))]
        if bad:
            raise DataError(f"{bad[0][0]}: {bad[0][1]} (DataSpec.strict; {len(bad)} unreadable file(s) in "
                            f"{spec.source})", field="DataSpec.strict")
    idx = _balanced_indices(fs.labels, spec.limit(split), spec.seed)
    return FileSplit(tuple(fs.files[i] for i in idx), fs.labels[idx], fs.class_names, fs.channels, fs.skipped,
                     tuple(fs.sizes[i] for i in idx))


def common_size(spec: DataSpec) -> tuple[int, int] | None:
    """``(H, W)`` shared by every image of a folder dataset (from the headers), or ``None`` when
    they differ, so that ``image_size`` must be chosen.

    Raises:
        DataError: a named source (their size is fixed), or as :func:`list_split`.
    """
    if spec.source in NAMED_SOURCES:
        raise DataError(f"source {spec.source} is not a folder of image files", field="DataSpec.source")
    folders.layout(Path(spec.source))  # a missing folder says so here
    sizes = {s for split in SPLITS if has_split(spec, split) for s in list_split(spec, split).sizes}
    return next(iter(sizes)) if len(sizes) == 1 else None


def load_split(spec: DataSpec, split: str) -> Split:
    """Load one split (``"train"``, ``"val"`` or ``"test"``) of the dataset ``spec`` names.

    Folders: unreadable files are skipped, each named with its reason on stderr, and listed in
    ``Split.skipped`` (with the junk the listing left out); ``spec.strict`` refuses instead.

    Returns:
        A :class:`Split` of ``(N, H, W, C) uint8`` images at ``spec.image_size``.

    Raises:
        DataError: unknown source or split (``val`` of a dataset without one), missing or empty
            directory, images of different sizes without ``image_size``, an unreadable image
            with ``strict``, fewer than two classes.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "val" and not has_split(spec, "val"):
        raise DataError(f"{spec.source} has no val split (only a folder with ROOT/val/<class>/ has one)")
    if spec.source in NAMED_SOURCES and spec.test_split is not None:
        raise DataError(f"test_split is for a folder of class folders; {spec.source} has its own test split",
                        field="DataSpec.test_split")
    if spec.source == "synthetic":
        out = synthetic_split(split, spec.limit(split) or SYNTHETIC_DEFAULTS[split], seed=spec.seed)
    elif spec.source == "cifar10":
        x, y, names = cifar10.read_cifar10(cifar10.ensure_cifar10(), split)
        out = _limit(Split(x, y, tuple(names)), spec.limit(split), spec.seed)
    elif spec.source in mnist.SOURCES:
        x, y, names = mnist.read_mnist(spec.source, mnist.ensure_mnist(spec.source), split)
        out = _limit(Split(x, y, names), spec.limit(split), spec.seed)
    else:
        out = _load_folder_split(spec, split)
    if spec.source in NAMED_SOURCES and spec.image_size is not None and out.image_shape[:2] != spec.image_size:
        out = Split(np.stack([resize_array(x, spec.image_size, spec.resize) for x in out.images])
                    if len(out) else out.images, out.labels, out.class_names)
    if len(out.class_names) < 2:
        raise DataError(f"{spec.source}: a classifier needs at least 2 classes, found {len(out.class_names)}")
    return out


def load_dataset(spec: DataSpec) -> tuple[Split, Split]:
    """Load ``(train, test)``; checks both have the same classes and image shape.

    Raises:
        DataError: as :func:`load_split`, or the splits disagree.
    """
    train, test = load_split(spec, "train"), load_split(spec, "test")
    if not test.images.size:
        raise DataError(f"{spec.source}: the test split is empty")
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
    """``(files, labels, class names)`` of one split of the folder ``root`` (default split rule)."""
    fs = folders.list_folder_split(root, split)
    return list(fs.files), fs.labels, fs.class_names


def _cache_dir() -> Path:
    return folders.cache_dir()


# skipped files and layout notes already printed on stderr in this process: each is said once
_REPORTED: set = set()
# (source, split) -> {file: reason} of the files that failed to decode in this process
_DECODE_FAILURES: dict[tuple[str, str], dict[Path, str]] = {}


def note_decode_failure(spec: DataSpec, split: str, path: Path, reason: str) -> None:
    """Record that ``path`` of ``split`` could not be decoded (a streaming reader skipping it),
    so the run's data report lists it (:func:`edgesmith.core.datareport.data_report`)."""
    _DECODE_FAILURES.setdefault((spec.source, split), {})[Path(path)] = reason


def decode_failures(spec: DataSpec, split: str) -> tuple[tuple[Path, str], ...]:
    """``(path, reason)`` of the files of ``split`` that failed to decode in this process."""
    return tuple(sorted(_DECODE_FAILURES.get((spec.source, split), {}).items()))


def _say_skipped(spec: DataSpec, split: str, skipped, total: int) -> None:
    """Name each skipped file on stderr once per process, then the count (a later subset of the
    same split, e.g. the calibration images, repeats nothing)."""
    new = [(f, why) for f, why in skipped if (f, why) not in _REPORTED]
    if not new:
        return
    _REPORTED.update(new)
    for f, why in new:
        print(f"skipped {f}: {why}", file=sys.stderr)
    print(f"{spec.source} ({split}): skipped {len(skipped):,} of {total:,} files (listed in the run's "
          f"data_report.json)", file=sys.stderr)


def _load_folder_split(spec: DataSpec, split: str) -> Split:
    fs = list_split(spec, split)
    root = Path(spec.source)
    if folders.layout(root) == "flat" and split == "train" and (spec.source, "split", "") not in _REPORTED:
        _REPORTED.add((spec.source, "split", ""))
        fraction = DEFAULT_TEST_SPLIT if spec.test_split is None else spec.test_split
        print(f"{root} has no train/ folder: holding out {fraction:.0%} of each class as test "
              f"(stratified, split seed {spec.split_seed}; --test-split to change)", file=sys.stderr)
    files, labels, classes = list(fs.files), fs.labels, fs.class_names
    cache = _folder_cache(spec, files)
    cached = _read_folder_cache(cache)
    if cached is not None:
        images, ok, why = cached
    else:
        decoded = _decode_all(files, fs.channels, spec.image_size, spec.resize)
        why = {i: d for i, d in enumerate(decoded) if isinstance(d, str)}
        ok = np.asarray([i not in why for i in range(len(files))], dtype=bool)
        good = [d for d in decoded if not isinstance(d, str)]
        if good:
            first, first_file = good[0].shape, files[int(np.flatnonzero(ok)[0])]
            for f, a in zip((f for f, k in zip(files, ok) if k), good):
                if a.shape != first:
                    raise DataError(f"images in {root / split if folders.layout(root) == 'split' else root} differ "
                                    f"in size: {f} is {a.shape[1]}x{a.shape[0]}, {first_file} is "
                                    f"{first[1]}x{first[0]}; pass image_size H[xW] (and resize "
                                    f"{'|'.join(RESIZE_MODES)}) to bring them to one size",
                                    field="DataSpec.image_size")
            images = np.stack(good)
        else:
            images = np.zeros((0, *(spec.image_size or (1, 1)), fs.channels), np.uint8)
        try:
            with atomic_path(cache) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, images=images, labels=labels, ok=ok,
                             bad_index=np.asarray(sorted(why), dtype=np.int64),
                             bad_why=np.asarray([why[i] for i in sorted(why)], dtype=str))
        except OSError:
            pass  # a read-only home is fine; we just decode again next time
    bad = [(files[i], why[i]) for i in sorted(why)]
    for f, reason in bad:
        note_decode_failure(spec, split, f, reason)
    if bad and spec.strict:
        raise DataError(f"{bad[0][0]}: {bad[0][1]} (DataSpec.strict; {len(bad)} unreadable file(s) in {spec.source})",
                        field="DataSpec.strict")
    skipped = tuple(fs.skipped) + tuple(bad)
    _say_skipped(spec, split, skipped, len(files) + len(fs.skipped))
    kept = tuple(f for f, k in zip(files, ok) if k)
    if not kept:
        raise DataError(f"{spec.source} ({split}): none of the {len(files)} image files could be read")
    return Split(images, labels[ok], classes, files=kept, skipped=skipped)


def _folder_cache(spec: DataSpec, files: list[Path]) -> Path:
    """Where the decoded copy of ``files`` lives. Decoding tens of thousands of JPEGs takes a while:
    the copy is keyed by the decoder version, the channel rule, size and resize policy and the exact
    file list, sizes and modification times, so any change to the data or to how it decodes is a miss."""
    key = hashlib.sha256(f"decoder {DECODER_VERSION}\nchannels gray-if-all-gray\n"
                         f"size {spec.image_size} resize {spec.resize}\n".encode())
    for f in files:
        st = f.stat()
        key.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return _cache_dir() / f"folder-{key.hexdigest()[:24]}.npz"


def _read_folder_cache(cache: Path) -> tuple[np.ndarray, np.ndarray, dict[int, str]] | None:
    """``(images, ok, why)`` from a decoded copy, or None when there is none or it cannot be read
    (an old format: decoded again and overwritten)."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache) as z:
            return z["images"], z["ok"], {int(i): str(w) for i, w in zip(z["bad_index"], z["bad_why"])}
    except (OSError, ValueError, KeyError):
        return None


def _decode_or_reason(f: Path, channels: int, size, resize: str) -> np.ndarray | str:
    try:
        return decode_image(f, channels, size, resize)
    except DataError as e:
        return str(e).removeprefix(f"{f}: ")


def _decode_all(files: list[Path], channels: int, size=None, resize: str = "squash") -> list[np.ndarray | str]:
    """Every file as ``(H, W, C) uint8`` with the serving decoder (training sees what predict
    sees), or the reason it could not be decoded."""
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda f: _decode_or_reason(f, channels, size, resize), files, chunksize=256))


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
