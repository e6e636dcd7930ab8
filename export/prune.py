"""Magnitude pruning (TF-MOT): wrap the prunable layers, fine-tune, strip the wrappers.

Pruning zeroes weights; the file keeps every zero, so only the *compressed* size of an
artifact shrinks (see :func:`edgesmith.export.fidelity.gzip_bytes`). Source of the method: Zhu & Gupta, "To prune,
or not to prune" (2017), as implemented by ``tfmot.sparsity.keras.prune_low_magnitude``
with a ``PolynomialDecay`` schedule; 2:4 structured sparsity via ``sparsity_m_by_n``.

The steps compose (:func:`prune` runs them all)::

    wrapped = prune_low_magnitude(model, pruning_params(0.5, tune.steps(len(images))))
    fine_tune(wrapped, images, labels, tune, callbacks=[UpdatePruningStep()])
    pruned = strip_pruning(wrapped)
"""
from __future__ import annotations

import numpy as np

from edgesmith.core.errors import ConfigError

from .finetune import PRUNABLE, FineTune, copy_model, fine_tune, is_prunable, wrap_layers

__all__ = ["prune", "prune_low_magnitude", "pruning_params", "strip_pruning", "layer_sparsity",
           "check_sparsity", "FineTune", "PRUNABLE"]


def check_sparsity(sparsity: float) -> None:
    """Raises ConfigError unless ``0 < sparsity < 1``."""
    if not 0 < sparsity < 1:
        raise ConfigError(f"ExportConfig.prune (sparsity) must be in (0, 1), got {sparsity}",
                          field="ExportConfig.prune")


def pruning_params(sparsity: float, steps: int, *, structured_2_4: bool = False) -> dict:
    """TF-MOT ``prune_low_magnitude`` arguments for a fine-tune of ``steps`` optimizer steps.

    Unstructured: ``PolynomialDecay`` from 0 to ``sparsity`` over the first 2/3 of the
    steps (the last third recovers accuracy at the final sparsity). ``structured_2_4``:
    constant sparsity 0.5 in the 2:4 pattern (``sparsity_m_by_n``).

    Raises:
        ConfigError: sparsity outside (0, 1).
    """
    import tensorflow_model_optimization as tfmot

    check_sparsity(sparsity)
    sp = tfmot.sparsity.keras
    if structured_2_4:
        return {"pruning_schedule": sp.ConstantSparsity(0.5, begin_step=0, frequency=max(steps // 20, 1)),
                "sparsity_m_by_n": (2, 4)}
    return {"pruning_schedule": sp.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                                   end_step=max(2 * steps // 3, 1),
                                                   frequency=max(steps // 30, 1))}


def _channels_in(layer) -> int:
    return int(layer.get_weights()[0].shape[-2]) if layer.get_weights() else 0


def prune_low_magnitude(model, params: dict):
    """A copy of ``model`` with its Conv2D/Dense/DepthwiseConv2D layers wrapped for pruning.

    Only those layers are wrapped: TF-MOT refuses preprocessing layers such as
    ``Rescaling``. With a 2:4 pattern in ``params``, layers whose input channels are not
    a multiple of 4 (the RGB stem) are left dense. ``model`` is not modified.

    Args:
        params: from :func:`pruning_params`.
    """
    import tensorflow_model_optimization as tfmot

    m_by_n = "sparsity_m_by_n" in params

    def wrap(layer):
        if is_prunable(layer) and not (m_by_n and _channels_in(layer) % 4):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, **params)
        return layer

    return wrap_layers(model, wrap)


def strip_pruning(model):
    """The pruned model without its wrappers: a plain float model whose kernels hold the zeros."""
    import tensorflow_model_optimization as tfmot

    return copy_model(tfmot.sparsity.keras.strip_pruning(model))


def prune(model, images: np.ndarray, labels: np.ndarray, *, sparsity: float,
          tune: FineTune = FineTune(), structured_2_4: bool = False, seed: int = 0):
    """Prune ``model``'s Conv2D/Dense kernels to ``sparsity`` while fine-tuning, then strip.

    The schedule (:func:`pruning_params`) reaches ``sparsity`` after 2/3 of the
    fine-tune. With ``structured_2_4`` every group of 4 consecutive input-channel weights
    keeps its 2 largest (NVIDIA 2:4 pattern, sparsity 0.5); the RGB stem stays dense.

    Example::

        pruned = prune(model, train.images, train.labels, sparsity=0.5, tune=FineTune(epochs=4))

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

    params = pruning_params(sparsity, tune.steps(len(images)), structured_2_4=structured_2_4)
    wrapped = prune_low_magnitude(model, params)
    fine_tune(wrapped, images, labels, tune, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], seed=seed)
    return strip_pruning(wrapped)


def layer_sparsity(model) -> dict[str, float]:
    """Fraction of exactly-zero kernel weights in each Conv2D/Dense layer, by layer name."""
    return {layer.name: round(float(np.mean(layer.get_weights()[0] == 0)), 4)
            for layer in model.layers if is_prunable(layer) and layer.get_weights()}
