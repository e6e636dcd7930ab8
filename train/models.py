"""Model architectures. Each builder takes ``input_shape`` and ``num_classes``.

Every model takes raw pixels, ``(N, H, W, C)`` float32 in 0-255 (the runtime feeds
uint8), and starts with a ``Rescaling(1/255)`` layer: preprocessing lives in the model,
so training, int8 calibration and the runtime all see the same raw pixels. Every model
ends in a float32 softmax, so outputs are ``(N, num_classes)`` probabilities even under
a mixed-precision policy.
"""
from __future__ import annotations

from typing import Callable

from edgesmith.core.errors import ConfigError

from ._keras import keras

layers = keras.layers


def _head(x, num_classes: int):
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probs")(x)


def _inputs(input_shape):
    inp = keras.Input(shape=tuple(input_shape), name="images")
    return inp, layers.Rescaling(1.0 / 255, name="rescale")(inp)


def resnet8(input_shape=(32, 32, 3), num_classes: int = 10) -> keras.Model:
    """ResNet-8, the MLPerf Tiny image-classification reference network.

    Conv16 stem, then three residual stacks (16, 32, 64 filters; stride 2 and a 1x1
    projection shortcut from the second), global average pooling, dense softmax.
    78k parameters, 12.5 M MACs at 32x32. Source: MLPerf Tiny v0.5,
    ``benchmark/training/image_classification/keras_model.py``.
    """
    reg = keras.regularizers.l2(1e-4)
    # BatchNorm momentum 0.9 (Keras default 0.99) so that the moving statistics settle
    # within the few hundred steps of a short run; long runs are unaffected.
    bn = lambda: layers.BatchNormalization(momentum=0.9)  # noqa: E731
    conv = dict(padding="same", kernel_initializer="he_normal", kernel_regularizer=reg, use_bias=False)
    inp, x = _inputs(input_shape)
    x = layers.Conv2D(16, 3, **conv)(x)
    x = bn()(x)
    x = layers.ReLU()(x)
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = layers.Conv2D(filters, 3, strides=stride, **conv)(x)
        y = bn()(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(filters, 3, **conv)(y)
        y = bn()(y)
        if stride != 1:
            x = layers.Conv2D(filters, 1, strides=stride, **conv)(x)
            x = bn()(x)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, _head(x, num_classes), name="resnet8")


def cnn(input_shape=(32, 32, 3), num_classes: int = 10) -> keras.Model:
    """The classic TensorFlow CIFAR-10 tutorial CNN.

    Conv32-MaxPool-Conv64-MaxPool-Conv64-Dense64-Dense(num_classes), ReLU, 122k
    parameters at 32x32. Source: tensorflow.org/tutorials/images/cnn.
    """
    inp, x = _inputs(input_shape)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(inp, _head(x, num_classes), name="cnn")


MODELS: dict[str, Callable[..., keras.Model]] = {"resnet8": resnet8, "cnn": cnn}


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Build the architecture ``name`` (uncompiled).

    Raises:
        ConfigError: unknown model name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](input_shape, num_classes)
