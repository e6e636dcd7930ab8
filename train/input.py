"""tf.data input pipeline: uint8 images in, augmented float32 raw pixels out.

Two sources, one pipeline: decoded arrays in memory (:func:`make_dataset`; a class folder's
decode is cached once as ``.npz`` by :mod:`edgesmith.core.data`), or image files decoded while
training by the one decoder (:func:`make_file_dataset`, for splits larger than the memory budget,
:func:`should_stream`). Both shuffle, augment (in parallel), batch and prefetch alike.

Augmentation presets (``--augment``):

``auto``          the default: chosen from the data (:func:`.config.resolve_augment`): ``shift`` for
                  gray images (digits, characters), ``default`` for colour images.
``default``       random horizontal flip + pad-4-and-crop (He et al., 2016, the CIFAR-10 recipe); at
                  other sizes the pad keeps its share of the side (1/8: 8 px at 64x64, 12 at 96x96).
``shift``         pad-and-crop by up to 8% of the side (2 px at 28x28), no flip: for digits and
                  characters, where a flip changes the class (the LeNet-5 / MNIST recipe).
``rotate-shift``  flip, rotation up to 15 degrees, shifts up to 10% of height/width.
``zoom-shift``    flip, zoom up to 5%, shifts up to 5%.
``none``          no augmentation (e.g. digits, where a flip changes the class).

``cutout`` (DeVries & Taylor, 2017, "Improved Regularization of CNNs with Cutout") can be added
to any preset: one square of half the image side per image, filled with mid-grey (128).

``resize_to`` (progressive resizing, see :class:`edgesmith.train.TrainConfig`) scales each
augmented batch down (bilinear, antialiased) as the last step, so a fully convolutional model
trains its early epochs on fewer pixels.
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

from edgesmith.tfshim import keras, tf
from .config import AUGMENTS, resolve_augment

PAD = 4  # pad-and-crop: up to 4 px shift each way at 32x32 ...
PAD_FRACTION = PAD / 32  # ... and 1/8 of the shorter side at other sizes (12 px at 96x96)
# Bytes tf.data's autotuner may spend on buffers of a streamed pipeline (default: half the RAM).
STREAM_RAM_BUDGET = 512 * 2**20
SHIFT_FRACTION = 0.08  # ``shift``: up to 8% of the shorter side each way (2 px at 28x28)


def pad_pixels(image_hw: tuple[int, int]) -> int:
    """Pixels the ``default`` preset pads (and so shifts) by at most: 4 at 32x32 (the CIFAR-10
    recipe), the same 1/8 of the shorter side at other sizes (8 at 64x64, 12 at 96x96)."""
    return max(1, round(PAD_FRACTION * min(image_hw)))


def shift_pad(image_hw: tuple[int, int]) -> int:
    """Pixels the ``shift`` preset pads (and so shifts) by at most, for ``(H, W)`` images."""
    return max(1, round(SHIFT_FRACTION * min(image_hw)))


def _pad_crop(pad: int, flip: bool):
    """A batch map: [flip half the images of a ``(B, H, W, C)`` batch left-right], then crop
    each at its own random offset from the batch padded by ``pad`` with zeros. One op per batch,
    not per image: about half the CPU time of per-image ``tf.image`` calls (31,000 against 17,000
    img/s on 2 cores), which the model's training steps get back."""

    def fn(images, labels):
        shape = tf.shape(images)
        b, h, w = shape[0], shape[1], shape[2]
        if flip:
            images = tf.where(tf.random.uniform([b, 1, 1, 1]) < 0.5, tf.reverse(images, [2]), images)
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        rows = tf.random.uniform([b, 1], 0, 2 * pad + 1, tf.int32) + tf.range(h)[None]
        cols = tf.random.uniform([b, 1], 0, 2 * pad + 1, tf.int32) + tf.range(w)[None]
        return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1), labels

    return fn


def _layer_augment(preset: str, seed: int) -> "keras.Sequential":
    L = keras.layers
    if preset == "rotate-shift":
        steps = [L.RandomFlip("horizontal", seed=seed), L.RandomRotation(15 / 360, seed=seed + 1),
                 L.RandomTranslation(0.1, 0.1, seed=seed + 2)]
    else:  # zoom-shift
        steps = [L.RandomFlip("horizontal", seed=seed), L.RandomZoom(0.05, seed=seed + 1),
                 L.RandomTranslation(0.05, 0.05, seed=seed + 2)]
    return keras.Sequential(steps, name=f"augment_{preset.replace('-', '_')}")


def cutout(images, size: int):
    """Grey out one random ``size x size`` square per image of a ``(B, H, W, C)`` float batch."""
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    cy = tf.random.uniform([b, 1, 1], 0, h, dtype=tf.int32)
    cx = tf.random.uniform([b, 1, 1], 0, w, dtype=tf.int32)
    ys = tf.range(h)[None, :, None]
    xs = tf.range(w)[None, None, :]
    inside = ((tf.abs(ys - cy) <= size // 2) & (tf.abs(xs - cx) <= size // 2))[..., None]
    return tf.where(inside, tf.constant(128.0, images.dtype), images)


def make_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int, training: bool,
                 seed: int = 0, augment: str = "auto", use_cutout: bool = False,
                 resize_to: tuple[int, int] | None = None) -> "tf.data.Dataset":
    """Batched dataset of ``((B, H, W, C) float32 0-255, (B,) int64)`` from decoded images in memory.

    Training datasets are reshuffled every epoch and augmented by the ``augment`` preset
    (see the module docstring; ``auto`` is resolved from the images' channels), in parallel,
    with prefetch. Pixels stay raw: the model
    scales them itself. Multi-worker training shards it by element (``AutoShardPolicy.DATA``).
    ``resize_to`` ``(h, w)`` resizes every batch last (antialiased bilinear), giving
    ``(B, h, w, C)`` float32 batches.

    Raises:
        ValueError: unknown ``augment`` (TrainConfig validates it first).
    """
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    return _pipeline(ds, len(images), tuple(images.shape[1:]), batch_size=batch_size, training=training,
                     seed=seed, augment=augment, use_cutout=use_cutout, resize_to=resize_to)


def _pipeline(ds, n: int, image_shape: tuple, *, batch_size: int, training: bool, seed: int, augment: str,
              use_cutout: bool, resize_to, decode=None) -> "tf.data.Dataset":
    """Shuffle (training) -> [decode] -> batch -> augment -> float32 -> [resize] -> prefetch.

    Shuffling comes before decoding, over ``n`` elements with ``seed``: the order depends only on
    ``n`` and the seed, so files streamed through ``decode`` arrive in the same order as the same
    images held in memory."""
    if augment not in AUGMENTS:
        raise ValueError(f"unknown augmentation {augment!r}")
    augment, _ = resolve_augment(augment, image_shape)
    if training:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if decode is not None:
        ds = decode(ds)
    ds = ds.batch(batch_size, drop_remainder=False)
    if training and augment in ("default", "shift"):
        crop = _pad_crop(pad_pixels(image_shape[:2]), flip=True) if augment == "default" else \
            _pad_crop(shift_pad(image_shape[:2]), flip=False)
        ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment in ("rotate-shift", "zoom-shift"):
        aug = _layer_augment(augment, seed)
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training and use_cutout:
        size = max(1, int(image_shape[0]) // 2)
        ds = ds.map(lambda x, y: (cutout(x, size), y), num_parallel_calls=tf.data.AUTOTUNE)
    if resize_to is not None:
        ds = ds.map(lambda x, y: (tf.image.resize(x, resize_to, antialias=True), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    if decode is not None:  # tf.data's autotuner may otherwise buffer up to half the RAM in decoded batches
        options.autotune.ram_budget = STREAM_RAM_BUDGET
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


# --- streaming from the files ---------------------------------------------------------

# Stream when the decoded training split would take more than this share of the memory available
# now: the decoded arrays are copied at least once more (tf.data's from_tensor_slices), and the
# model, TensorFlow and the test split need room too.
MEMORY_SHARE = 0.25


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def should_stream(n_images: int, image_shape: tuple[int, int, int], asked: bool | None = None,
                  available: int | None = None) -> tuple[bool, str]:
    """Whether to stream a split of ``n_images`` ``(H, W, C)`` uint8 images from its files, and why.

    ``asked`` (``TrainConfig.stream``) decides when set; otherwise stream when the decoded split
    (``N*H*W*C`` bytes) exceeds :data:`MEMORY_SHARE` of ``available`` bytes (default: the memory
    available now, :func:`available_memory`).

    Returns:
        ``(stream, reason)``: the reason is one line for the training log.
    """
    need = n_images * int(np.prod(image_shape))
    if asked is not None:
        return asked, f"{'--stream' if asked else '--no-stream'} ({need / 2**30:.2f} GiB decoded)"
    available = available_memory() if available is None else available
    if available is None:
        return False, f"{need / 2**30:.2f} GiB decoded, available memory unknown: decoded into memory"
    budget = MEMORY_SHARE * available
    verdict = "over" if need > budget else "within"
    return need > budget, (f"{need / 2**30:.2f} GiB decoded, {verdict} the budget of {budget / 2**30:.2f} GiB "
                           f"({MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available)")


class FileDecoder:
    """Decodes files for a streamed dataset with the one decoder
    (:func:`edgesmith.core.images.decode_image`), and keeps the files it could not read.

    A file that fails to decode (truncated, corrupt, or not of the expected size) is dropped from the
    stream, named on stderr, passed to ``on_failure`` and listed in :attr:`failed` (path, reason), like
    the reader's skipped files; with
    ``strict`` the first one stops training instead (:attr:`error`, raised by the training loop).
    """

    def __init__(self, channels: int, size: tuple[int, int] | None, resize: str = "squash", *,
                 strict: bool = False, expect_hw: tuple[int, int] | None = None, on_failure=None):
        self.channels, self.size, self.resize, self.strict = channels, size, resize, strict
        self.on_failure = on_failure  # called with (path, reason) once per file that fails
        self.expect_hw = tuple(size) if size is not None else expect_hw
        self.failed: dict[str, str] = {}
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def decode(self, path: str) -> np.ndarray:
        """``(H, W, C) uint8`` pixels of ``path``.

        Raises:
            DataError: unreadable, or not ``expect_hw`` when no target size is set.
        """
        from edgesmith.core.errors import DataError
        from edgesmith.core.images import decode_image

        x = decode_image(path, self.channels, self.size, self.resize)
        if self.expect_hw is not None and x.shape[:2] != self.expect_hw:
            raise DataError(f"{path}: {x.shape[1]}x{x.shape[0]} pixels, the split's images are "
                            f"{self.expect_hw[1]}x{self.expect_hw[0]} (give image_size to bring them all to one size)",
                            field="DataSpec.image_size")
        return x

    def _numpy(self, path: bytes):
        from edgesmith.core.errors import DataError

        p = path.decode()
        try:
            return self.decode(p), True
        except DataError as e:
            with self._lock:
                new = p not in self.failed
                self.failed[p] = str(e).removeprefix(f"{p}: ")
            if new:  # named in the log once, and listed in metrics.json (and the run's data report)
                print(f"skipped {p}: {self.failed[p]}", file=sys.stderr)
                if self.on_failure is not None:
                    self.on_failure(p, self.failed[p])
                if self.strict and self.error is None:
                    self.error = e
            if self.strict:
                raise
            h, w = self.expect_hw or (1, 1)
            return np.zeros((h, w, self.channels), np.uint8), False

    def __call__(self, ds: "tf.data.Dataset") -> "tf.data.Dataset":
        """Map ``(path, label)`` elements to ``(image, label)`` in parallel, order kept; failures dropped."""
        shape = (*self.expect_hw, self.channels) if self.expect_hw else (None, None, self.channels)

        def fn(path, label):
            image, ok = tf.numpy_function(self._numpy, [path], (tf.uint8, tf.bool), stateful=False)
            image.set_shape(shape)
            return image, label, ok

        def decoded(image, label, ok):
            return ok

        def drop_flag(image, label, ok):
            return image, label

        ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.filter(decoded).map(drop_flag)


def make_file_dataset(files, labels: np.ndarray, decoder: FileDecoder, *, batch_size: int, training: bool,
                      seed: int = 0, augment: str = "auto", use_cutout: bool = False,
                      resize_to: tuple[int, int] | None = None) -> "tf.data.Dataset":
    """:func:`make_dataset` streamed from image files: the same batches, decoded while training.

    Shuffling (seeded, each epoch) runs over the file list, then ``decoder`` decodes the files in
    parallel (order kept, so a seed gives the same batches as :func:`make_dataset` on the same
    images decoded into memory in the same order), then batching and augmentation as in memory.
    Memory: a few batches of decoded images plus the file names, whatever the split's size.

    Args:
        files: ``N`` image paths.
        labels: ``(N,) int64`` class ids.
        decoder: decodes one file; its ``expect_hw`` must be known (the images' common size).

    Raises:
        ValueError: unknown ``augment``, or no image size known.
    """
    if decoder.expect_hw is None:
        raise ValueError("streaming needs the images' size: give the decoder a size or expect_hw")
    paths = np.asarray([str(f) for f in files])
    ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, dtype=np.int64)))
    return _pipeline(ds, len(paths), (*decoder.expect_hw, decoder.channels), batch_size=batch_size,
                     training=training, seed=seed, augment=augment, use_cutout=use_cutout, resize_to=resize_to,
                     decode=decoder)


def dataset_throughput(ds: "tf.data.Dataset", seconds: float = 5.0) -> float:
    """Images per second ``ds`` (batches of ``(B, ...)`` images) delivers, img/s, after one warm-up batch,
    iterated (repeated) for about ``seconds``."""
    import time

    it = iter(ds.repeat())
    next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, _ = next(it)
        n += int(x.shape[0])
    return n / (time.perf_counter() - t0)


def pipeline_throughput(images: np.ndarray, labels: np.ndarray, *, batch_size: int = 128,
                        augment: str = "auto", use_cutout: bool = False, seconds: float = 5.0) -> float:
    """Images per second the training pipeline alone delivers (no model), img/s.

    Iterates the augmented, batched training dataset for about ``seconds`` after one warm-up
    batch, so the figure can be set against the model's training img/s.
    """
    ds = make_dataset(images, labels, batch_size=batch_size, training=True, augment=augment,
                      use_cutout=use_cutout)
    return dataset_throughput(ds, seconds)
