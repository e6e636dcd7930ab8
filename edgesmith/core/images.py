"""The one image decoder: a file -> ``(H, W, C) uint8``, with Pillow and numpy only.

Training (the class-folder reader, and so int8 calibration) and serving
(:mod:`edgesmith.runtime.images`) both decode here, so a model sees the same pixels in
both. The steps:

1. **Decode** with Pillow (JPEG, PNG, BMP, WebP, GIF, TIFF, ...); the first frame of an
   animation; EXIF orientation applied (``ImageOps.exif_transpose``). Given a target size,
   a large JPEG is decoded at a reduced DCT scale (``Image.draft``) that is still at least
   the target size. Images over Pillow's ``MAX_IMAGE_PIXELS`` are refused.
2. **Mode**: 16-bit and 32-bit integer images are scaled to 8 bits (``value * 255 / 65535``
   for 16-bit), float images clipped to 0-1 or 0-255; images with transparency (RGBA, LA,
   palette with a transparent colour) are composited over **white**; then Pillow's
   ``convert`` to ``"RGB"`` (3 channels), ``"L"`` (1, ITU-R 601-2 luma) or ``"RGBA"`` (4).
3. **Resize** (only when a target size is given) to ``W x H`` with Pillow's **bilinear**
   filter, which widens its support when downscaling so it also antialiases, by one of
   :data:`RESIZE_MODES` (the model files record which, see :mod:`edgesmith.runtime.modelmeta`):

   * ``squash`` (default): the whole image to ``W x H``; the aspect ratio is not kept.
   * ``crop``: the largest centred region of the target's aspect ratio, resized to ``W x H``
     (the short side fills the target; like Keras' ``crop_to_aspect_ratio``), with
     ``ImageOps.fit``.
   * ``pad``: letterbox: the whole image scaled so its long side fills the target, centred on
     a **black** (:data:`PAD_COLOR`) canvas, with ``ImageOps.pad``.

   An image already at the target size is left untouched in every mode.
"""
from __future__ import annotations

import struct
import threading
import warnings
from pathlib import Path

import numpy as np

from .errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
RESAMPLE = "bilinear"
# Bump when the pixels decode_image returns change, so decoded-dataset caches are rebuilt.
# 2: EXIF orientation, alpha over white and 16-bit scaling in training too (was convert("RGB")).
DECODER_VERSION = 2
# How an image of another aspect ratio reaches the target size (see the module docstring).
RESIZE_MODES = ("squash", "crop", "pad")
PAD_COLOR = 0  # letterbox bars: black in every channel (RGB (0, 0, 0), L 0, RGBA (0, 0, 0, 0))
MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_EXIF_ORIENTATION = 0x0112
# warnings.catch_warnings changes process-wide state (Python < 3.14): one thread at a time.
_OPEN_LOCK = threading.Lock()


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


def _open(path: Path):
    """``Image.open`` with Pillow's decompression-bomb warning raised as an error."""
    from PIL import Image

    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _draft(im, mode: str, size: tuple[int, int]) -> None:
    """Let a JPEG decode at a reduced scale still covering ``size`` ``(H, W)`` once rotated."""
    h, w = size
    if im.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):  # stored transposed
        h, w = w, h
    im.draft("L" if mode == "L" else "RGB", (w, h))


def _resize(im, size: tuple[int, int], resize: str):
    """``im`` at ``(H, W)`` ``size`` by the ``resize`` mode (bilinear)."""
    from PIL import Image, ImageOps

    wh = (size[1], size[0])
    if im.size == wh:
        return im
    if resize == "crop":
        return ImageOps.fit(im, wh, method=Image.Resampling.BILINEAR)
    if resize == "pad":
        return ImageOps.pad(im, wh, method=Image.Resampling.BILINEAR, color=(PAD_COLOR,) * len(im.getbands()))
    return im.resize(wh, Image.Resampling.BILINEAR)


def check_resize(resize: str) -> str:
    """``resize`` if it is one of :data:`RESIZE_MODES`.

    Raises:
        DataError: any other value (naming the choices).
    """
    if resize not in RESIZE_MODES:
        raise DataError(f"unknown resize mode {resize!r}; expected one of {', '.join(RESIZE_MODES)}")
    return resize


def decode_image(path: str | Path, channels: int = 3, size: tuple[int, int] | None = None,
                 resize: str = "squash") -> np.ndarray:
    """Decode one image file (see the module docstring for every step).

    Args:
        path: an image file in any format and mode Pillow reads.
        channels: 1 (luma), 3 (RGB) or 4 (RGBA).
        size: target ``(H, W)`` in pixels; ``None`` keeps the decoded (EXIF-rotated) size.
        resize: how another aspect ratio reaches ``size``: ``squash``, ``crop`` or ``pad``
            (:data:`RESIZE_MODES`); ignored without ``size``.

    Returns:
        ``(H, W, channels) uint8`` pixels 0-255.

    Raises:
        DataError: ``channels`` is not 1, 3 or 4; an unknown ``resize``; the file is missing,
            not an image, too large, truncated or corrupt (one line naming the file).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    check_resize(resize)
    if channels not in MODES:
        raise DataError(f"models with {channels} input channels are not supported (1, 3 or 4)")
    path, mode = Path(path), MODES[channels]
    try:
        with _open(path) as im:
            if size is not None and im.format == "JPEG":
                _draft(im, mode, size)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            im = _to_mode(im, mode)
            if size is not None:
                im = _resize(im, size, resize)
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
    return x.reshape(x.shape[0], x.shape[1], channels)


def resize_array(image: np.ndarray, size: tuple[int, int], resize: str = "squash") -> np.ndarray:
    """Resize decoded pixels by the decoder's rule (step 3), for datasets that come as arrays.

    Args:
        image: ``(H, W, C) uint8`` with C = 1, 3 or 4.
        size: target ``(H, W)`` in pixels.
        resize: one of :data:`RESIZE_MODES`.

    Returns:
        ``(size[0], size[1], C) uint8``.

    Raises:
        DataError: an unknown ``resize``.
    """
    from PIL import Image

    check_resize(resize)
    c = image.shape[-1]
    im = Image.fromarray(image[..., 0] if c == 1 else image, mode=MODES[c])
    x = np.asarray(_resize(im, size, resize), dtype=np.uint8)
    return x.reshape(x.shape[0], x.shape[1], c)
