"""Image files -> model input pixels, with Pillow only (no TensorFlow).

Every file becomes ``(H, W, C) uint8`` at the model's input size:

1. **Decode** with Pillow (JPEG, PNG, BMP, WebP, GIF, TIFF, ...); the first frame of an
   animation; EXIF orientation applied (``ImageOps.exif_transpose``). Large JPEGs are
   decoded at a reduced DCT scale (``Image.draft``) that is still at least the model size.
2. **Mode** to the model's channels: 16-bit and 32-bit integer images are scaled to 8 bits
   (``value * 255 / 65535`` for 16-bit), float images clipped to 0-1 or 0-255;
   images with transparency (RGBA, LA, palette with a transparent colour) are composited
   over **white**; then Pillow's ``convert`` to ``"RGB"`` (3 channels), ``"L"`` (1, ITU-R
   601-2 luma) or ``"RGBA"`` (4).
3. **Resize** the whole image to the model's ``W x H`` (no crop; the aspect ratio is not
   kept) with Pillow's **bilinear** filter, which widens its support when downscaling so it
   also antialiases. An image already at the model size is left untouched, so the shared
   32x32 CIFAR JPEGs reach the model exactly as the dataset loader decodes them.
"""
from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from edgesmith.core.errors import DataError

from .base import InputSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
RESAMPLE = "bilinear"
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _to_8bit(im):
    """16/32-bit integer and float images as an 8-bit ``L`` image."""
    from PIL import Image

    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        a = a * 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else a
    elif im.mode.startswith("I;16") or (im.mode == "I" and a.max(initial=0) > 255):
        a = a.astype(np.float64) * (255.0 / 65535.0) if a.max(initial=0) <= 65535 else \
            a.astype(np.float64) * (255.0 / float(a.max()))
    return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), mode="L")


def _to_mode(im, mode: str):
    from PIL import Image

    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = _to_8bit(im)
    if mode != "RGBA" and (im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or
                           (im.mode == "P" and "transparency" in im.info)):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return im if im.mode == mode else im.convert(mode)


def load_image(path: str | Path, spec: InputSpec | tuple[int, int, int]) -> np.ndarray:
    """Decode one image file and fit it to a model input (see the module docstring).

    Args:
        path: an image file in any format and mode Pillow reads.
        spec: the model's :class:`InputSpec`, or its ``(H, W, C)``.

    Returns:
        ``(H, W, C) uint8`` pixels 0-255.

    Raises:
        DataError: the file is missing, not an image, truncated or corrupt (one line
            naming the file).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    h, w, c = spec.shape if isinstance(spec, InputSpec) else spec
    if c not in _MODES:
        raise DataError(f"models with {c} input channels are not supported (1, 3 or 4)")
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format == "JPEG":
                    im.draft("RGB" if c != 1 else "L", (w, h))
                im.load()
                im = ImageOps.exif_transpose(im) or im
                im = _to_mode(im, _MODES[c])
                if im.size != (w, h):
                    im = im.resize((w, h), Image.Resampling.BILINEAR)
                x = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: refused, too many pixels ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:  # truncated / corrupt data
        raise DataError(f"{path}: cannot decode image, corrupt or truncated? "
                        f"({str(e).strip() or type(e).__name__})") from None
    return x.reshape(h, w, c)


def load_images(paths: Iterable[str | Path], spec: InputSpec | tuple[int, int, int]) -> np.ndarray:
    """Decode many files into one batch.

    Returns:
        ``(N, H, W, C) uint8``.

    Raises:
        DataError: the first file that cannot be read (use :func:`load_image` per file
            to skip bad ones instead).
    """
    h, w, c = spec.shape if isinstance(spec, InputSpec) else spec
    arrays = [load_image(p, (h, w, c)) for p in paths]
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
