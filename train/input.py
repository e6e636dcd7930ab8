"""tf.data input pipeline: uint8 images in, augmented float32 raw pixels out.

The class-folder decode is cached once as ``.npz`` by :mod:`edgesmith.core.data`; this
module only shuffles, augments (in parallel), batches and prefetches the decoded arrays.

Augmentation presets (``--augment``):

``auto``          the default: chosen from the data (:func:`.config.resolve_augment`): ``shift`` for
                  gray images (digits, characters), ``default`` for colour images.
``default``       random horizontal flip + pad-4-and-crop (He et al., 2016, the CIFAR-10 recipe).
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

import numpy as np

from ._keras import keras, tf
from .config import AUGMENTS, resolve_augment

PAD = 4  # pad-and-crop: up to 4 px shift each way
SHIFT_FRACTION = 0.08  # ``shift``: up to 8% of the shorter side each way (2 px at 28x28)


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
    """Batched dataset of ``((B, H, W, C) float32 0-255, (B,) int64)``.

    Training datasets are reshuffled every epoch and augmented by the ``augment`` preset
    (see the module docstring; ``auto`` is resolved from the images' channels), in parallel,
    with prefetch. Pixels stay raw: the model
    scales them itself. Multi-worker training shards it by element (``AutoShardPolicy.DATA``).
    ``resize_to`` ``(h, w)`` resizes every batch last (antialiased bilinear), giving
    ``(B, h, w, C)`` float32 batches.

    Raises:
        ValueError: unknown ``augment`` (TrainConfig validates it first).
    """
    if augment not in AUGMENTS:
        raise ValueError(f"unknown augmentation {augment!r}")
    augment, _ = resolve_augment(augment, images.shape[1:])
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    if training and augment in ("default", "shift"):
        crop = _pad_crop(PAD, flip=True) if augment == "default" else _pad_crop(shift_pad(images.shape[1:3]), flip=False)
        ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment in ("rotate-shift", "zoom-shift"):
        aug = _layer_augment(augment, seed)
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    if training and use_cutout:
        size = max(1, int(images.shape[1]) // 2)
        ds = ds.map(lambda x, y: (cutout(x, size), y), num_parallel_calls=tf.data.AUTOTUNE)
    if resize_to is not None:
        ds = ds.map(lambda x, y: (tf.image.resize(x, resize_to, antialias=True), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def pipeline_throughput(images: np.ndarray, labels: np.ndarray, *, batch_size: int = 128,
                        augment: str = "auto", use_cutout: bool = False, seconds: float = 5.0) -> float:
    """Images per second the training pipeline alone delivers (no model), img/s.

    Iterates the augmented, batched training dataset for about ``seconds`` after one warm-up
    batch, so the figure can be set against the model's training img/s.
    """
    import time

    ds = make_dataset(images, labels, batch_size=batch_size, training=True, augment=augment,
                      use_cutout=use_cutout).repeat()
    it = iter(ds)
    next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, _ = next(it)
        n += int(x.shape[0])
    return n / (time.perf_counter() - t0)
