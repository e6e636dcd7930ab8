"""tf.data input pipeline: uint8 images in, augmented float32 raw pixels out."""
from __future__ import annotations

import numpy as np

from ._keras import tf

PAD = 4  # pad-and-crop: up to 4 px shift each way (He et al., 2016, CIFAR-10 recipe)


def _augment(image, label):
    shape = tf.shape(image)
    image = tf.image.random_flip_left_right(image)
    image = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]])
    image = tf.image.random_crop(image, shape)
    return image, label


def make_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int, training: bool,
                 seed: int = 0) -> "tf.data.Dataset":
    """Batched dataset of ``((B, H, W, C) float32 0-255, (B,) int64)``.

    Training datasets are reshuffled every epoch and augmented with a random horizontal
    flip and a pad-4-and-crop, in parallel, with prefetch. Pixels stay raw: the model
    scales them itself.
    """
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
