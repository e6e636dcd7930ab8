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

from .config import _RESNET_N, BACKBONE_LAYER, any_input_size, is_known, model_names  # noqa: F401  (re-exported)

from edgesmith.tfshim import keras

layers = keras.layers


def _head(x, num_classes: int):
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probs")(x)


def _inputs(input_shape):
    inp = keras.Input(shape=tuple(input_shape), name="images")
    return inp, layers.Rescaling(1.0 / 255, name="rescale")(inp)


def resnet8(input_shape=(32, 32, 3), num_classes: int = 10, **_) -> keras.Model:
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


def cnn(input_shape=(32, 32, 3), num_classes: int = 10, **_) -> keras.Model:
    """The classic TensorFlow CIFAR-10 tutorial CNN.

    Conv32-MaxPool-Conv64-MaxPool-Conv64-Dense64-Dense(num_classes), ReLU, 122k
    parameters at 32x32. Source: tensorflow.org/tutorials/images/cnn.

    On larger images one more max-pooling (layer ``downsample``, pool = side // 4) brings the last
    feature map back to about the 4x4 it is at 32x32, so the dense layer (and the parameter count,
    122k) stays the same at 48, 64, 96 or 128 px instead of growing with the square of the side
    (1.7 M parameters at 96x96 without it).
    """
    inp, x = _inputs(input_shape)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None and (h >= 8 or w >= 8):
        x = layers.MaxPooling2D((max(1, h // 4), max(1, w // 4)), name="downsample")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(inp, _head(x, num_classes), name="cnn")


def resnet_n(depth: int, input_shape=(32, 32, 3), num_classes: int = 10, **_) -> keras.Model:
    """ResNet-n for CIFAR (n = 6k + 2: ResNet-20, -32, -44, -56, -110).

    Conv16 stem, three stages of k basic blocks (16, 32, 64 filters; the first block of
    stages 2 and 3 has stride 2 and a 1x1 projection shortcut), global average pooling,
    dense softmax. ResNet-20: 0.27 M parameters, 41 M MACs at 32x32.
    Source: He et al., 2016, "Deep Residual Learning for Image Recognition", section 4.2.

    Raises:
        ConfigError: ``depth`` is not 6k + 2 with k >= 1.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"ResNet depth must be 6k+2 (20, 32, 44, 56, 110), got {depth}")
    blocks = (depth - 2) // 6
    reg = keras.regularizers.l2(1e-4)
    bn = lambda: layers.BatchNormalization(momentum=0.9)  # noqa: E731 - see resnet8
    conv = dict(padding="same", kernel_initializer="he_normal", kernel_regularizer=reg, use_bias=False)
    inp, x = _inputs(input_shape)
    x = layers.ReLU()(bn()(layers.Conv2D(16, 3, **conv)(x)))
    for stage, filters in enumerate((16, 32, 64)):
        for b in range(blocks):
            stride = 2 if stage and b == 0 else 1
            y = layers.ReLU()(bn()(layers.Conv2D(filters, 3, strides=stride, **conv)(x)))
            y = bn()(layers.Conv2D(filters, 3, **conv)(y))
            if stride != 1:
                x = bn()(layers.Conv2D(filters, 1, strides=stride, **conv)(x))
            x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, _head(x, num_classes), name=f"resnet{depth}")


def resnet20(input_shape=(32, 32, 3), num_classes: int = 10, **_) -> keras.Model:
    """ResNet-20 (:func:`resnet_n` with depth 20)."""
    return resnet_n(20, input_shape, num_classes)


def lenet5(input_shape=(28, 28, 1), num_classes: int = 10, **_) -> keras.Model:
    """LeNet-5 for small gray images (MNIST-style 28x28x1; works on any >= 28x28 input).

    Conv6(5x5, same)-AvgPool-Conv16(5x5)-AvgPool-Dense120-Dense84-Dense(num_classes), ReLU
    instead of the original tanh/sigmoid. 61 k parameters at 28x28x1.
    Source: LeCun et al., 1998, "Gradient-Based Learning Applied to Document Recognition".
    """
    inp, x = _inputs(input_shape)
    x = layers.Conv2D(6, 5, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D()(x)
    x = layers.Conv2D(16, 5, activation="relu")(x)
    x = layers.AveragePooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(120, activation="relu")(x)
    x = layers.Dense(84, activation="relu")(x)
    return keras.Model(inp, _head(x, num_classes), name="lenet5")


def _divisible(v: float, d: int = 8) -> int:
    out = max(d, int(v + d / 2) // d * d)
    return out + d if out < 0.9 * v else out


# (expansion t, channels c, repeats n, stride s); the CIFAR variant keeps stride 1 in the
# stem and in the 24-channel stage, so a 32x32 input ends at 4x4 instead of 1x1.
_MBV2 = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenetv2(input_shape=(32, 32, 3), num_classes: int = 10, width: float = 1.0, **_) -> keras.Model:
    """MobileNetV2, small-input (CIFAR) variant, with a width multiplier.

    Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear projection, residual
    when shapes match), ReLU6, channels rounded to multiples of 8. Strides follow the
    paper except the stem and the 24-channel stage (stride 1 for 32x32 inputs, as in the
    common CIFAR ports). Width 1.0: 2.2 M parameters; width 0.35: 0.4 M.
    Source: Sandler et al., 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks".

    Raises:
        ConfigError: ``width`` outside (0, 4].
    """
    if not 0 < width <= 4:
        raise ConfigError(f"width must be in (0, 4], got {width}", field="TrainConfig.width")
    bn = lambda: layers.BatchNormalization(momentum=0.9)  # noqa: E731
    inp, x = _inputs(input_shape)
    x = layers.ReLU(6.0)(bn()(layers.Conv2D(_divisible(32 * width), 3, padding="same", use_bias=False)(x)))
    for t, c, n, s in _MBV2:
        out_ch = _divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            in_ch = x.shape[-1]
            y = x
            if t != 1:
                y = layers.ReLU(6.0)(bn()(layers.Conv2D(in_ch * t, 1, use_bias=False)(y)))
            y = layers.ReLU(6.0)(bn()(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(y)))
            y = bn()(layers.Conv2D(out_ch, 1, use_bias=False)(y))
            x = layers.Add()([x, y]) if stride == 1 and in_ch == out_ch else y
    last = _divisible(1280 * max(1.0, width))
    x = layers.ReLU(6.0)(bn()(layers.Conv2D(last, 1, use_bias=False)(x)))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, _head(x, num_classes), name="mobilenetv2")


BACKBONE_SIZE = 224  # ResNet50V2's ImageNet resolution


def resnet50v2(input_shape=(32, 32, 3), num_classes: int = 10, weights: str = "none",
               size: int = BACKBONE_SIZE, **_) -> keras.Model:
    """ResNet50V2 transfer learning: an ImageNet backbone (layer ``backbone``) and a new head.

    Raw pixels are scaled to [-1, 1] (the backbone's own preprocessing) and resized to
    ``size`` x ``size`` (bilinear) inside the model, then backbone -> global average
    pooling -> dropout 0.2 -> dense softmax. The backbone runs in inference mode (its
    BatchNorm statistics stay as loaded), so it can be frozen and then fine-tuned, see
    :func:`edgesmith.train.loop.train`. 23.6 M parameters.
    Source: He et al., 2016, "Identity Mappings in Deep Residual Networks";
    ``keras.applications.ResNet50V2``.

    Args:
        weights: ``imagenet`` (downloaded by Keras), a path to a no-top ResNet50V2 weights
            file (``.h5``), or ``none`` (random initialisation).

    Raises:
        ConfigError: the ImageNet weights cannot be downloaded, the file is missing or does
            not fit, or the input does not have 3 channels.
    """
    from pathlib import Path

    if input_shape[-1] != 3:
        raise ConfigError(f"resnet50v2 needs 3-channel images, got {input_shape[-1]}")
    if weights not in ("imagenet", "none") and not Path(weights).is_file():
        raise ConfigError(f"weights {weights}: no such file (use imagenet, none or the path of an .h5 file)",
                          field="TrainConfig.weights")
    try:
        backbone = keras.applications.ResNet50V2(include_top=False, input_shape=(size, size, 3),
                                                 weights=None if weights == "none" else weights)
    except Exception as e:  # noqa: BLE001 - download or file errors come in many types
        what = "download the ImageNet weights" if weights == "imagenet" else f"load weights from {weights}"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"resnet50v2: cannot {what} ({first[:160]}); set weights to the path of "
                          "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5, or to none",
                          field="TrainConfig.weights") from None
    backbone._name = BACKBONE_LAYER["resnet50v2"]  # the layer the loop freezes, then fine-tunes
    inp = keras.Input(shape=tuple(input_shape), name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inp)
    if tuple(input_shape[:2]) != (size, size):
        x = layers.Resizing(size, size, name="upsample")(x)
    x = backbone(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(inp, _head(x, num_classes), name="resnet50v2")


MODELS: dict[str, Callable[..., keras.Model]] = {
    "resnet8": resnet8, "resnet20": resnet20, "cnn": cnn, "lenet5": lenet5,
    "mobilenetv2": mobilenetv2, "resnet50v2": resnet50v2}
def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **options) -> keras.Model:
    """Build the architecture ``name`` (uncompiled), ``(N, H, W, C)`` raw pixels -> ``(N, K)`` probs.

    Args:
        options: builder options: ``width`` (mobilenetv2), ``weights`` and ``size`` (resnet50v2);
            builders ignore the ones they do not take.

    Raises:
        ConfigError: unknown model name (the message lists the known ones), or a bad option.
    """
    if name in MODELS:
        return MODELS[name](input_shape, num_classes, **options)
    if is_known(name):
        return resnet_n(int(_RESNET_N.match(name).group(1)), input_shape, num_classes)
    raise ConfigError(f"unknown model {name!r}; choose one of {model_names()}")
