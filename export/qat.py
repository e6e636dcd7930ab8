"""Quantization-aware training (TF-MOT ``quantize_apply``), plain or prune-preserving.

TF-MOT has no quantize config for preprocessing layers such as ``Rescaling``, so the
model is annotated layer by layer (``clone_model`` with a ``clone_function``): every
layer gets TF-MOT's default 8-bit config, except the preprocessing layers, which get
``Default8BitOutputQuantizeConfig`` (no weights; their output is fake-quantized, so the
first convolution sees the int8 tensor it will see in the TFLite file). For a pruned
model, ``Default8BitPrunePreserveQuantizeScheme`` keeps the zeros through the fine-tune
(TF-MOT collaborative optimization, "PQAT"); for a clustered model
``Default8BitClusterPreserveQuantizeScheme`` keeps the few shared values ("CQAT"/"PCQAT").

The steps compose (:func:`quantize_aware` runs them all)::

    qat = quantize_apply(quantize_annotate(model), quantize_scheme(preserve_sparsity=True))
    calibrate_ranges(qat, images)
    fine_tune(qat, images, labels, tune)
"""
from __future__ import annotations

import numpy as np

from .finetune import FineTune, fine_tune, wrap_layers

PREPROCESSING = ("Rescaling", "Normalization", "Resizing", "CenterCrop")


def quantize_annotate(model):
    """A copy of ``model`` with every layer annotated for 8-bit QAT (``model`` is not modified).

    Preprocessing layers (:data:`PREPROCESSING`) get ``Default8BitOutputQuantizeConfig``
    (no weights, output fake-quantized); every other layer TF-MOT's default config.
    The ``InputLayer`` is not passed to ``clone_function`` and stays as it is.
    """
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs)

    q = tfmot.quantization.keras

    def annotate(layer):
        if type(layer).__name__ in PREPROCESSING:
            return q.quantize_annotate_layer(layer, configs.Default8BitOutputQuantizeConfig())
        return q.quantize_annotate_layer(layer)

    return wrap_layers(model, annotate)


def quantize_scheme(*, preserve_sparsity: bool = False, preserve_clusters: bool = False):
    """TF-MOT's 8-bit scheme: default, prune-preserving (PQAT) or cluster-preserving (CQAT / PCQAT)."""
    import tensorflow_model_optimization as tfmot

    q = tfmot.quantization.keras
    if preserve_clusters:
        return tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
            preserve_sparsity=preserve_sparsity)
    if preserve_sparsity:
        return q.collab_opts.Default8BitPrunePreserveQuantizeScheme()
    return q.default_8bit.Default8BitQuantizeScheme()


def quantize_apply(annotated, scheme):
    """The fake-quantized model (``QuantizeWrapperV2`` layers) of an annotated one."""
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs)

    q = tfmot.quantization.keras
    with q.quantize_scope({"Default8BitOutputQuantizeConfig": configs.Default8BitOutputQuantizeConfig}):
        return q.quantize_apply(annotated, scheme)


def quantize_aware(model, images: np.ndarray, labels: np.ndarray, *,
                   tune: FineTune = FineTune(epochs=1, learning_rate=1e-4),
                   preserve_sparsity: bool = False, preserve_clusters: bool = False,
                   seed: int = 0):
    """Fine-tune a fake-quantized copy of ``model``; convert the result with int8 TFLite.

    Example::

        qat = quantize_aware(model, train.images, train.labels)
        to_tflite(qat, "model_qat_int8.tflite", precision="int8", representative=calib)

    Args:
        model: trained float tf_keras model (not modified).
        images / labels: ``(N, H, W, C) uint8`` training pixels and ``(N,)`` classes.
        tune: the fine-tune (QAT needs a low learning rate: the weights are already good).
        preserve_sparsity: use the prune-preserving scheme (for a pruned model).
        preserve_clusters: use the cluster-preserving scheme (for a clustered model,
            "PCQAT"; keeps the zeros too when ``preserve_sparsity``).

    Returns:
        The QAT model (``QuantizeWrapperV2`` layers holding the learned ranges); pass it to
        :func:`edgesmith.export.tflite.to_tflite` with ``precision="int8"``.
    """
    scheme = quantize_scheme(preserve_sparsity=preserve_sparsity, preserve_clusters=preserve_clusters)
    qat = quantize_apply(quantize_annotate(model), scheme)
    calibrate_ranges(qat, images)
    fine_tune(qat, images, labels, tune, seed=seed)
    return qat


EMA_DECAY = 0.999  # TF-MOT MovingAverageQuantizer's fixed decay (quantizers.py)


def calibrate_ranges(qat, images: np.ndarray, *, batches: int = 8, batch_size: int = 128) -> None:
    """Start every activation range at its measured value instead of TF-MOT's [-6, 6].

    TF-MOT's activation ranges are exponential moving averages (decay 0.999, no
    debiasing) starting at [-6, 6]: after one epoch of CIFAR-10 (~400 steps) they still
    weigh 67% on the initial value, which clips the 0-255 input pixels at ~90. Here a
    few training-mode forward passes (no weight update) recover each batch's min/max
    from the EMA update (``x = (v_new - 0.999 v_old) / 0.001``), every other variable
    (BatchNorm statistics, weight ranges) is restored, and each range is set to the
    mean over the batches. Weight ranges (``kernel_min/max``) are last-value, not EMA.

    Args:
        images: ``(N, H, W, C) uint8`` training pixels; ``batches * batch_size`` are used.
    """
    import re

    ranges = [v for v in qat.non_trainable_variables if re.search(r"_(min|max):\d+$", v.name)]
    # the input QuantizeLayer uses AllValuesQuantizer (running min/max, starts at 0):
    # its value after the passes is already the observed range
    direct = {id(v) for layer in qat.layers if type(layer).__name__ == "QuantizeLayer" for v in layer.weights}
    ema = [v for v in ranges if "kernel" not in v.name and id(v) not in direct]
    state = [(v, v.numpy()) for v in qat.non_trainable_variables if id(v) not in direct]
    sums = [np.zeros(v.shape, np.float64) for v in ema]
    n = 0
    for i in range(0, min(len(images), batches * batch_size), batch_size):
        before = [v.numpy().astype(np.float64) for v in ema]
        qat(images[i:i + batch_size].astype(np.float32), training=True)
        for k, v in enumerate(ema):
            sums[k] += (v.numpy().astype(np.float64) - EMA_DECAY * before[k]) / (1 - EMA_DECAY)
        for v, value in state:
            v.assign(value)
        n += 1
    for v, s in zip(ema, sums):
        value = s / max(n, 1)
        # TFLite needs 0 inside every range; undo float round-off of the recovery
        value = np.minimum(value, 0) if v.name.split(":")[0].endswith("_min") else np.maximum(value, 0)
        v.assign(value.astype(v.dtype.as_numpy_dtype))
