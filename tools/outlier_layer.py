"""Fault injection for the float-fallback figures: one layer of a trained model gets an extreme weight range.

Takes a trained run's ``model.keras`` and one convolution ``--layer`` whose input is a
BatchNormalization -> ReLU pair (the inner convolution of a ResNet block). It

1. makes one input channel of that layer dead: the BatchNormalization's offset (beta) of that
   channel goes below anything the channel reaches on the training images, so the ReLU outputs
   exactly 0 (the float model loses that one channel, and the script reports its new top-1);
2. sets every weight of ``--layer`` that reads the dead channel to ``--weight`` (default 500).

In float the outlier weights multiply zeros, so they change nothing. Per-channel int8 gives every
output channel of the layer a scale of ``weight / 127`` and rounds its real weights (far below
that) to 0, so int8 loses most of the model's accuracy in that one layer: what
``edgesmith export --fallback auto`` must find. The same construction as
``tests/export/test_fallback.py``, applied to a real trained network.

Usage (needs the ``[train]`` extra)::

    python tools/outlier_layer.py RUN --layer conv2d_13 --out outlier.keras
    edgesmith export outlier.keras --data ../shared/data/cifar10-jpeg --out runs/outlier \\
        --max-accuracy-drop 0.3 --fallback auto --verify-size 10000

A research script of the project, not part of the installed package; it prints what it did.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.rundir import RunDir, require_model


def _inbound(layer):
    inbound = layer._inbound_nodes[0].inbound_layers
    return inbound[0] if isinstance(inbound, list) else inbound


def inject(model, layer_name: str, weight: float, images: np.ndarray, channel: int | None = None) -> dict:
    """Kill one input channel of ``layer_name`` and give its weights from it the value ``weight``. In place.

    Args:
        model: a tf_keras functional model taking ``(N, H, W, C)`` float32 pixels 0-255.
        layer_name: a Conv2D whose input is ReLU(BatchNormalization(...)).
        weight: the outlier weight.
        images: ``(N, H, W, C) uint8`` training images that set how low the offset must go.
        channel: the input channel to kill; None: the one with the lowest mean activation.

    Returns:
        ``{"layer", "channel", "batchnorm", "beta_before", "beta_after", "weight"}``.

    Raises:
        ValueError: the layer is not a Conv2D fed by a ReLU fed by a BatchNormalization.
    """
    from edgesmith.tfshim import keras

    conv = model.get_layer(layer_name)
    relu = _inbound(conv)
    bn = _inbound(relu)
    if type(conv).__name__ != "Conv2D" or type(relu).__name__ not in ("ReLU", "Activation") \
            or type(bn).__name__ != "BatchNormalization":
        raise ValueError(f"{layer_name} is not a Conv2D fed by ReLU(BatchNormalization): "
                         f"{type(bn).__name__} -> {type(relu).__name__} -> {type(conv).__name__}")
    pre = keras.Model(model.inputs, bn.output).predict(images.astype(np.float32), batch_size=256, verbose=0)
    post = np.maximum(pre, 0).mean(axis=(0, 1, 2))
    channel = int(np.argmin(post)) if channel is None else channel
    gamma, beta, mean, var = bn.get_weights()
    before = float(beta[channel])
    beta[channel] -= 2 * float(pre[..., channel].max() - beta[channel]) + 1.0  # below every value reached, x2
    bn.set_weights([gamma, beta, mean, var])
    kernel, *rest = conv.get_weights()
    kernel[:, :, channel, :] = weight
    conv.set_weights([kernel, *rest])
    return {"layer": layer_name, "channel": channel, "batchnorm": bn.name, "beta_before": before,
            "beta_after": float(beta[channel]), "weight": weight}


def main() -> None:
    from edgesmith.tfshim import keras

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--layer", required=True)
    ap.add_argument("--weight", type=float, default=500.0)
    ap.add_argument("--channel", type=int)
    ap.add_argument("--out", type=Path, required=True, help="the .keras file to write")
    ap.add_argument("--images", type=int, default=5000, help="training images that set the dead offset")
    args = ap.parse_args()
    manifest, path = require_model(RunDir(args.run))
    model = keras.models.load_model(path, compile=False)
    spec = DataSpec.from_dict(manifest["dataset"])
    train = load_split(dataclasses.replace(spec, limit_train=args.images), "train")
    test = load_split(spec, "test")
    before = float((model.predict(test.images.astype(np.float32), batch_size=256, verbose=0).argmax(1)
                    == test.labels).mean())
    info = inject(model, args.layer, args.weight, train.images, args.channel)
    after = model.predict(test.images.astype(np.float32), batch_size=256, verbose=0)
    dead = keras.Model(model.inputs, _inbound(model.get_layer(args.layer)).output).predict(
        test.images.astype(np.float32), batch_size=256, verbose=0)[..., info["channel"]]
    model.save(args.out)
    print(f"{info}\nfloat test top-1 {before:.2%} -> {(after.argmax(1) == test.labels).mean():.2%} "
          f"(one channel of {info['batchnorm']} removed); the channel's largest value on the "
          f"{len(test)} test images: {dead.max():g}; wrote {args.out}")


if __name__ == "__main__":
    main()
