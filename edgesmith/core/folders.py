"""Class-folder datasets listed without decoding pixels: layouts, junk, splits.

Three layouts, told apart by which folders ``ROOT`` holds:

* ``ROOT/{train,test}/<class>/...`` - the splits as given;
* ``ROOT/{train,val,test}/<class>/...`` - plus a validation split (:func:`has_split`);
* ``ROOT/<class>/...`` alone (no ``train/``) - split here, stratified and seeded: per class,
  ``round(test_split x n)`` files (at least 1 of a class with 2 or more) go to ``test``, the
  rest to ``train``, chosen by a permutation seeded with ``(split_seed, class name)`` over the
  files sorted by path. The same folder and seed give the same split on every machine.

Class names are the sorted names of the visible sub-folders. Each class folder is read
recursively. What is not an image is skipped and reported, never silently: hidden files and
folders (``.DS_Store``, ``.ipynb_checkpoints/``), files without an image suffix
(``Thumbs.db``, ``notes.txt``), empty files, and files whose header Pillow cannot read.
Decoding failures (a truncated JPEG) surface later, when :func:`edgesmith.core.data.load_split`
decodes (it skips and reports them too, unless strict).
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .images import IMAGE_SUFFIXES

SPLITS = ("train", "val", "test")
DEFAULT_TEST_SPLIT = 0.2
# Pillow modes of single-channel images: a folder of only these loads as (N, H, W, 1)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclass(frozen=True)
class FileSplit:
    """One split of a class-folder dataset, as files (nothing decoded).

    Attributes:
        files: image files, in a fixed order (class by class, sorted by path).
        labels: ``(N,) int64`` class indices into ``class_names``.
        class_names: label names, index = class id (sorted folder names).
        channels: 1 when every file's header says gray (:data:`GRAY_MODES`), else 3.
        skipped: ``(path, reason)`` of every file left out while listing (for the flat layout,
            the junk of the whole folder is reported with ``train``).
        sizes: ``(H, W)`` of each file from its header, EXIF rotation applied (what
            :func:`~.images.decode_image` returns without a target size).
    """

    files: tuple[Path, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    channels: int
    skipped: tuple[tuple[Path, str], ...] = ()
    sizes: tuple[tuple[int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.files)


def layout(root: Path) -> str:
    """``"split"`` when ``root`` has a ``train/`` folder, else ``"flat"`` (``ROOT/<class>/``).

    Raises:
        DataError: ``root`` is missing or not a directory.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data directory {root} does not exist")
    if not root.is_dir():
        raise DataError(f"source {root} is not a directory", field="DataSpec.source")
    return "split" if (root / "train").is_dir() else "flat"


def _classes(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _walk(class_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files under ``class_dir`` (recursive, sorted) and the skipped ones with why."""
    found, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        hidden = sorted(d for d in dirnames if d.startswith("."))
        for d in hidden:
            skipped.append((Path(dirpath) / d, "hidden folder"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            f = Path(dirpath) / name
            if name.startswith("."):
                skipped.append((f, "hidden file"))
            elif f.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((f, f"not an image file ({f.suffix or 'no suffix'})"))
            else:
                found.append(f)
    return sorted(found), skipped


def _header(path: Path) -> tuple[str | None, str | None, list[int] | None]:
    """``(Pillow mode, None, [H, W])`` from the file's header (EXIF rotation applied), or
    ``(None, reason, None)`` when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)", None
        with Image.open(path) as im:
            h, w = im.height, im.width
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # stored transposed
                h, w = w, h
            return im.mode, None, [h, w]
    except UnidentifiedImageError:
        return None, "not an image Pillow can read", None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        return None, f"unreadable header ({str(e).strip() or type(e).__name__})", None


def cache_dir() -> Path:
    """Where decoded datasets and header listings are cached (``EDGESMITH_CACHE``)."""
    return Path(os.environ.get("EDGESMITH_CACHE", Path.home() / ".cache" / "edgesmith"))


def _headers(files: list[Path]) -> list[tuple[str | None, str | None, list[int] | None]]:
    """:func:`_header` of every file, cached by the exact file list, sizes and modification
    times (reading 50,000 JPEG headers takes seconds; a stat of each does not)."""
    import json

    key = hashlib.sha256(b"headers 2\n")
    for f in files:
        st = f.stat()
        key.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache = cache_dir() / f"headers-{key.hexdigest()[:24]}.json"
    try:
        found = json.loads(cache.read_text())
        if len(found) == len(files):
            return [tuple(h) for h in found]
    except (OSError, ValueError, TypeError):
        pass  # no or unreadable cache: read the headers
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        headers = list(pool.map(_header, files, chunksize=256))
    try:
        from .fsutil import write_json
        write_json(cache, headers)
    except OSError:
        pass  # a read-only home is fine; we just read the headers again next time
    return headers


def _list_classes(folder: Path, classes: list[str]):
    """``(files, labels, skipped, modes, sizes)`` of the images in ``folder/<class>/`` for each class
    (files lying in ``folder`` itself are skipped: they belong to no class)."""
    files, labels = [], []
    skipped = [(p, "not in a class folder") for p in sorted(folder.iterdir()) if p.is_file()]
    for c, name in enumerate(classes):
        found, junk = _walk(folder / name)
        files += found
        labels += [c] * len(found)
        skipped += junk
    headers = _headers(files)
    keep = [i for i, (_, why, _) in enumerate(headers) if why is None]
    skipped += [(files[i], why) for i, (_, why, _) in enumerate(headers) if why is not None]
    return ([files[i] for i in keep], np.asarray([labels[i] for i in keep], dtype=np.int64),
            skipped, [headers[i][0] for i in keep], [tuple(headers[i][2]) for i in keep])


def _channels(modes) -> int:
    return 1 if modes and all(m in GRAY_MODES for m in modes) else 3


def stratified_test_mask(files: list[Path], labels: np.ndarray, class_names, fraction: float,
                         seed: int) -> np.ndarray:
    """``(N,) bool``: which files go to ``test`` (see the module docstring for the rule).

    Args:
        files: the listed files (only their order matters: sorted by path within a class).
        labels: ``(N,) int64`` class of each file.
        fraction: share of each class for test, in (0, 1).
        seed: the split seed.
    """
    mask = np.zeros(len(files), dtype=bool)
    for c, name in enumerate(class_names):
        idx = np.flatnonzero(labels == c)
        n = len(idx)
        k = min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
        rng = np.random.default_rng([seed, key])
        mask[idx[rng.permutation(n)[:k]]] = True
    return mask


def has_split(root: str | Path, split: str) -> bool:
    """True when the folder ``root`` provides ``split`` (``val`` only as ``ROOT/val/``)."""
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "val":
        return (root / "train").is_dir() and (root / "val").is_dir()
    return root.is_dir()


def list_folder_split(root: str | Path, split: str, *, test_split: float | None = None,
                      split_seed: int = 0) -> FileSplit:
    """The files of one split of a class-folder dataset (see the module docstring).

    Args:
        root: the dataset folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        test_split: for the flat layout, the test share (``None``: :data:`DEFAULT_TEST_SPLIT`);
            refused for a folder that has ``train/``.
        split_seed: seeds the flat layout's split.

    Returns:
        A :class:`FileSplit`.

    Raises:
        DataError: missing folder, ``test/`` missing beside ``train/``, ``val`` asked of a
            folder without ``val/``, ``test_split`` given for a split folder, no images.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    if layout(root) == "split":
        if test_split is not None:
            raise DataError(f"test_split is for a folder of class folders; {root} already has train/",
                            field="DataSpec.test_split")
        folder = root / split
        if not folder.is_dir():
            if split == "val":
                raise DataError(f"{root} has no val/ folder")
            raise DataError(f"{root} has train/ but no {split}/ folder (expected {root}/{{train,test}}/<class>/"
                            f"<image>, or only {root}/<class>/<image> to split it here)")
        classes = _classes(folder)
        files, labels, skipped, modes, sizes = _list_classes(folder, classes)
        if not files:
            raise DataError(f"{folder} contains no images in class folders")
        return FileSplit(tuple(files), labels, tuple(classes), _channels(modes), tuple(skipped), tuple(sizes))
    if split == "val":
        raise DataError(f"{root} has no val/ folder (a folder of class folders splits into train and test)")
    fraction = DEFAULT_TEST_SPLIT if test_split is None else test_split
    classes = _classes(root)
    files, labels, skipped, modes, sizes = _list_classes(root, classes)
    if not files:
        raise DataError(f"{root} contains no images in class folders (expected {root}/<class>/<image> or "
                        f"{root}/{{train,test}}/<class>/<image>)")
    test = stratified_test_mask(files, labels, classes, fraction, split_seed)
    keep = np.flatnonzero(test if split == "test" else ~test)
    return FileSplit(tuple(files[i] for i in keep), labels[keep], tuple(classes),
                     _channels(modes), tuple(skipped) if split == "train" else (), tuple(sizes[i] for i in keep))
