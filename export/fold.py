"""Fold the model's input scaling into its first convolution, for faster int8 graphs.

edgesmith models start with ``Rescaling(1/255)`` so that everything feeds raw pixels.
In a converted graph that layer is an extra elementwise op on the full-resolution input
(a quantized Mul, or a Quantize/Dequantize pair around it). Because ``conv(s * x) =
conv'(x)`` with ``W' = s * W`` when the offset is 0, the scale can move into the first
convolution's kernel: the model still takes raw 0-255 pixels and computes the same
function, one op shorter. Zero padding stays exact because 0 maps to 0.
"""
from __future__ import annotations

import numpy as np

from edgesmith.tfshim import keras

_FOLDABLE = ("Conv2D", "DepthwiseConv2D", "Dense")


def fold_rescaling(model: keras.Model, *, atol: float = 1e-4) -> keras.Model:
    """Return an equivalent model whose leading ``Rescaling`` is folded into the next layer.

    Args:
        model: a functional tf_keras model; its input layer may feed a ``Rescaling``
            (offset 0) whose only consumer is a Conv2D, DepthwiseConv2D or Dense layer.
        atol: largest allowed difference of outputs on a random raw-pixel batch.

    Returns:
        A new model (the input model is unchanged), or ``model`` itself when there is
        nothing that can be folded exactly (no Rescaling, non-zero offset, several consumers).

    Raises:
        AssertionError-free: a fold whose outputs differ by more than ``atol`` is discarded
        and ``model`` is returned unchanged, so this never makes an export wrong.
    """
    rescale = next((l for l in model.layers if type(l).__name__ == "Rescaling"), None)
    if rescale is None or np.any(np.asarray(rescale.offset) != 0):
        return model
    consumers = [node.outbound_layer for node in rescale.outbound_nodes]
    if len(consumers) != 1 or type(consumers[0]).__name__ not in _FOLDABLE:
        return model
    target = consumers[0].name
    scale = np.float32(np.asarray(rescale.scale))

    def clone(layer):
        if layer is rescale:
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=clone)
    folded.set_weights(model.get_weights())
    kernel_attr = "depthwise_kernel" if type(consumers[0]).__name__ == "DepthwiseConv2D" else "kernel"
    kernel = getattr(folded.get_layer(target), kernel_attr)
    kernel.assign(kernel.numpy() * scale)

    x = np.random.default_rng(0).integers(0, 256, (8, *model.input_shape[1:])).astype(np.float32)
    if np.abs(model(x, training=False).numpy() - folded(x, training=False).numpy()).max() > atol:
        return model
    return folded
