"""Image files -> model input pixels, with Pillow only (no TensorFlow).

Every file becomes ``(H, W, C) uint8`` at the model's input size through
:func:`edgesmith.core.images.decode_image`, the decoder training uses too: EXIF orientation
applied, 16/32-bit and float images scaled to 8 bits, transparency composited over white,
Pillow's ``convert`` to the model's channels, then a bilinear resize to the model's ``W x H``
by the resize policy the model file records (``squash`` the whole image, ``crop`` the centre
to the aspect ratio, or ``pad`` = letterbox in black; :attr:`InputSpec.resize`), the policy
training decoded with. An image already at the model size is left untouched, so the shared
32x32 CIFAR JPEGs reach the model exactly as the dataset loader decodes them.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgesmith.core.images import IMAGE_SUFFIXES, RESAMPLE, decode_image

from .base import InputSpec

__all__ = ["IMAGE_SUFFIXES", "RESAMPLE", "find_images", "load_image", "load_images"]


def load_image(path: str | Path, spec: InputSpec | tuple[int, int, int], resize: str | None = None) -> np.ndarray:
    """Decode one image file and fit it to a model input (see :mod:`edgesmith.core.images`).

    Args:
        path: an image file in any format and mode Pillow reads.
        spec: the model's :class:`InputSpec`, or its ``(H, W, C)``.
        resize: ``squash``, ``crop`` or ``pad``; ``None`` is ``spec.resize`` (the model
            file's policy), or ``squash`` for a bare shape.

    Returns:
        ``(H, W, C) uint8`` pixels 0-255.

    Raises:
        DataError: ``C`` is not 1, 3 or 4; an unknown ``resize``; the file is missing, not an
            image, truncated or corrupt (one line naming the file).
    """
    h, w, c = spec.shape if isinstance(spec, InputSpec) else spec
    if resize is None:
        resize = spec.resize if isinstance(spec, InputSpec) else "squash"
    return decode_image(path, c, (h, w), resize)


def load_images(paths: Iterable[str | Path], spec: InputSpec | tuple[int, int, int],
                resize: str | None = None) -> np.ndarray:
    """Decode many files into one batch.

    Returns:
        ``(N, H, W, C) uint8``.

    Raises:
        DataError: the first file that cannot be read (use :func:`load_image` per file
            to skip bad ones instead).
    """
    h, w, c = spec.shape if isinstance(spec, InputSpec) else spec
    arrays = [load_image(p, spec, resize) for p in paths]
    return np.stack(arrays) if arrays else np.zeros((0, h, w, c), np.uint8)


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories into image files.

    A path that is not a directory is kept as given, whatever its suffix, even when
    missing (so :func:`load_image` reports it); a directory is walked recursively, in
    sorted order, for files with an :data:`IMAGE_SUFFIXES` suffix (case-insensitive),
    skipping hidden entries.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)))
        else:
            found.append(p)
    return found
