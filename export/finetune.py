"""The short fine-tune that pruning, clustering and QAT share, as small steps that compose.

Each TF-MOT method follows the same three steps (TF-MOT's own pattern:
``prune_low_magnitude`` -> ``fit`` -> ``strip_pruning``)::

    wrapped = wrap_layers(model, wrap)          # a private copy, chosen layers wrapped
    fine_tune(wrapped, images, labels, tune)    # compile + fit on augmented training images
    plain = copy_model(strip(wrapped))          # wrappers gone, weights kept

``model`` is never modified: :func:`wrap_layers` works on a copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgesmith.core.errors import ConfigError

# Layers whose kernels pruning and clustering act on (TF-MOT refuses preprocessing layers).
PRUNABLE = ("Conv2D", "Dense", "DepthwiseConv2D")


@dataclass(frozen=True)
class FineTune:
    """A short fine-tune on the training split (used by pruning, clustering and QAT).

    Attributes:
        epochs: passes over the training images (1-3 is enough to recover).
        batch_size: images per step.
        learning_rate: peak Adam learning rate, cosine-decayed to zero.
        limit: use at most this many training images (``None``: all).
        label_smoothing: of the fine-tune's loss; ``None`` = the run's training recipe
            (the exporter fills it in from the manifest; 0 where unknown). Fine-tuning a
            model trained with smoothing against hard labels shifts its logits and cost
            0.5 pt in QAT on the 10-epoch ResNet-8.

    Raises:
        ConfigError: a value out of range (named in the message).
    """

    epochs: int = 2
    batch_size: int = 128
    learning_rate: float = 5e-4
    limit: int | None = None
    label_smoothing: float | None = None

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError(f"fine-tune epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"fine-tune batch size must be >= 1, got {self.batch_size}")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"fine-tune learning rate must be in (0, 1), got {self.learning_rate}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"fine-tune image limit must be >= 1, got {self.limit}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"fine-tune label smoothing must be in [0, 1), got {self.label_smoothing}")

    def steps(self, n_images: int) -> int:
        """Optimizer steps of this fine-tune on ``n_images`` training images (``limit`` applied)."""
        n = min(n_images, self.limit or n_images)
        return self.epochs * math.ceil(n / self.batch_size)


def copy_model(model):
    """An independent copy of a functional tf_keras model with the same weights."""
    from edgesmith.tfshim import keras

    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    return out


def is_prunable(layer) -> bool:
    """Whether ``layer`` is a Conv2D / Dense / DepthwiseConv2D (the kernels TF-MOT prunes and clusters)."""
    return type(layer).__name__ in PRUNABLE


def wrap_layers(model, wrap: Callable):
    """A copy of ``model`` with every layer passed through ``wrap`` (``clone_model``'s ``clone_function``).

    ``wrap`` gets the copy's layers, so weights carry over; it returns the layer itself
    or a TF-MOT wrapper around it. ``model`` is not modified.
    """
    from edgesmith.tfshim import keras

    return keras.models.clone_model(copy_model(model), clone_function=wrap)


def fine_tune(model, images: np.ndarray, labels: np.ndarray, tune: FineTune, *,
              callbacks=(), seed: int = 0) -> None:
    """Compile ``model`` and fine-tune it in place on augmented training images.

    Side effects: compiles ``model`` (Adam with cosine decay to zero over the whole
    fine-tune, the tune's label smoothing) and updates its weights.

    Args:
        model: a tf_keras model (e.g. from :func:`wrap_layers`).
        images: ``(N, H, W, C) uint8`` training pixels; labels ``(N,) int`` classes.
        tune: epochs, batch size, learning rate, image limit, label smoothing.
        callbacks: Keras callbacks (e.g. TF-MOT's ``UpdatePruningStep``).
        seed: of the augmentation and shuffling.
    """
    from edgesmith.tfshim import keras
    from edgesmith.train.input import make_dataset
    from edgesmith.train.recipe import make_loss

    if tune.limit:
        images, labels = images[:tune.limit], labels[:tune.limit]
    lr = keras.optimizers.schedules.CosineDecay(tune.learning_rate, decay_steps=max(tune.steps(len(images)), 1))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=make_loss(tune.label_smoothing or 0.0),
                  metrics=["accuracy"])
    ds = make_dataset(images, labels, batch_size=tune.batch_size, training=True, seed=seed)
    model.fit(ds, epochs=tune.epochs, verbose=0, callbacks=list(callbacks))
