"""Magnitude pruning (TF-MOT): wrap the prunable layers, fine-tune, strip the wrappers.

Pruning zeroes weights; the file keeps every zero, so only the *compressed* size of an
artifact shrinks (see :func:`edgesmith.export.fidelity.gzip_bytes`). Source of the method: Zhu & Gupta, "To prune,
or not to prune" (2017), as implemented by ``tfmot.sparsity.keras.prune_low_magnitude``
with a ``PolynomialDecay`` schedule; 2:4 structured sparsity via ``sparsity_m_by_n``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgesmith.core.errors import ConfigError
from edgesmith.train._keras import keras

PRUNABLE = ("Conv2D", "Dense", "DepthwiseConv2D")


@dataclass(frozen=True)
class FineTune:
    """A short fine-tune on the training split (used by pruning and QAT).

    Attributes:
        epochs: passes over the training images (1-3 is enough to recover).
        batch_size: images per step.
        learning_rate: peak Adam learning rate, cosine-decayed to zero.
        limit: use at most this many training images (``None``: all).
        label_smoothing: of the fine-tune's loss; ``None`` = the run's training recipe
            (the exporter fills it in from the manifest; 0 where unknown). Fine-tuning a
            model trained with smoothing against hard labels shifts its logits and cost
            0.5 pt in QAT on the 10-epoch ResNet-8.
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


def check_sparsity(sparsity: float) -> None:
    """Raises ConfigError unless ``0 < sparsity < 1``."""
    if not 0 < sparsity < 1:
        raise ConfigError(f"--prune sparsity must be in (0, 1), got {sparsity}")


def fit(model: keras.Model, images: np.ndarray, labels: np.ndarray, tune: FineTune, *,
        callbacks=(), seed: int = 0) -> None:
    """Compile ``model`` (Adam, cosine decay, the tune's label smoothing) and fine-tune it on
    augmented training images.

    Args:
        images: ``(N, H, W, C) uint8`` training pixels; labels ``(N,) int``.
    """
    from edgesmith.train.input import make_dataset
    from edgesmith.train.recipe import make_loss

    if tune.limit:
        images, labels = images[:tune.limit], labels[:tune.limit]
    steps = tune.epochs * math.ceil(len(images) / tune.batch_size)
    lr = keras.optimizers.schedules.CosineDecay(tune.learning_rate, decay_steps=max(steps, 1))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=make_loss(tune.label_smoothing or 0.0),
                  metrics=["accuracy"])
    ds = make_dataset(images, labels, batch_size=tune.batch_size, training=True, seed=seed)
    model.fit(ds, epochs=tune.epochs, verbose=0, callbacks=list(callbacks))


def copy_model(model: keras.Model) -> keras.Model:
    """An independent copy of a functional model with the same weights."""
    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    return out


def _channels_in(layer) -> int:
    return int(layer.get_weights()[0].shape[-2]) if layer.get_weights() else 0


def prune(model: keras.Model, images: np.ndarray, labels: np.ndarray, *, sparsity: float,
          tune: FineTune = FineTune(), structured_2_4: bool = False, seed: int = 0) -> keras.Model:
    """Prune ``model``'s Conv2D/Dense kernels to ``sparsity`` while fine-tuning, then strip.

    Only the prunable layers are wrapped (``clone_model`` with a ``clone_function``):
    TF-MOT refuses preprocessing layers such as ``Rescaling``. The schedule is
    ``PolynomialDecay`` from 0 to ``sparsity`` over the first 2/3 of the fine-tune
    steps; the last third recovers accuracy at the final sparsity. With
    ``structured_2_4`` every group of 4 consecutive input-channel weights keeps its 2
    largest (NVIDIA 2:4 pattern, sparsity 0.5); layers whose input channels are not a
    multiple of 4 (the RGB stem) are left dense.

    Args:
        model: trained float tf_keras model (not modified).
        images / labels: ``(N, H, W, C) uint8`` training pixels and ``(N,)`` classes.
        sparsity: target fraction of zero weights in each pruned kernel, in (0, 1).

    Returns:
        A new float model without pruning wrappers whose kernels hold the zeros.

    Raises:
        ConfigError: sparsity outside (0, 1).
    """
    import tensorflow_model_optimization as tfmot

    check_sparsity(sparsity)
    sp = tfmot.sparsity.keras
    n = min(len(images), tune.limit or len(images))
    steps = tune.epochs * math.ceil(n / tune.batch_size)
    if structured_2_4:
        params = {"pruning_schedule": sp.ConstantSparsity(0.5, begin_step=0, frequency=max(steps // 20, 1)),
                  "sparsity_m_by_n": (2, 4)}
    else:
        params = {"pruning_schedule": sp.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
            end_step=max(2 * steps // 3, 1), frequency=max(steps // 30, 1))}

    def wrap(layer):  # layers of ``base``, a private copy: their weights carry over
        if type(layer).__name__ in PRUNABLE and not (structured_2_4 and _channels_in(layer) % 4):
            return sp.prune_low_magnitude(layer, **params)
        return layer

    clone = keras.models.clone_model(copy_model(model), clone_function=wrap)
    fit(clone, images, labels, tune, callbacks=[sp.UpdatePruningStep()], seed=seed)
    stripped = sp.strip_pruning(clone)
    return copy_model(stripped)


def layer_sparsity(model: keras.Model) -> dict[str, float]:
    """Fraction of exactly-zero kernel weights in each Conv2D/Dense layer, by layer name."""
    return {layer.name: round(float(np.mean(layer.get_weights()[0] == 0)), 4)
            for layer in model.layers if type(layer).__name__ in PRUNABLE and layer.get_weights()}

