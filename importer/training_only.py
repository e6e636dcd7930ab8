"""Layers that only act while training, taken out of an imported model before it is exported.

Augmentation (``RandomFlip``, ``RandomRotation``, ...), dropout and noise layers change their
input only when called with ``training=True``; at inference they pass it through. Left in a
foreign model, they still put random-number state into its graph: a Keras 3 model exported
through a SavedModel keeps the seed generator's ``AssignVariableOp``, which the TFLite
converter cannot take, and its serving signature even augments every image. So the import
stage rebuilds the model without them (:func:`inference_form`): each becomes an ``Identity``
layer of the same name, which the converters drop; the other layers are the model's own
(shared weights, nothing re-initialised). ``RandomCrop`` of tf_keras is not an identity at
inference (it crops the largest centred window of the target aspect ratio and resizes,
``smart_resize``), so it is frozen into the ``Resizing`` layer that computes exactly that; in
Keras 3 it passes images through at inference and is removed like the others.

Two layers that do act at inference are rewritten too. ``Normalization`` keeps its mean and
variance as tensors captured from outside the graph, which tf2onnx turns into two extra ONNX
inputs; :func:`inference_form` replaces it with the ``Rescaling`` that does the same arithmetic
(``x * 1/sd + (-mean/sd)``, ``sd = max(sqrt(variance), epsilon)``, per channel), whose
constants live in the graph. tf_keras ``CenterCrop`` chooses between cropping and resizing with
a ``tf.cond`` (an ONNX ``If`` node, which ONNX Runtime's int8 quantizer cannot type); on an input
of known size at least the crop's, it is the ``Cropping2D`` of the same window. Neither rewrite
is recorded as a removal: nothing is left out, and both are checked like the removals.

The same code runs on tf_keras (in edgesmith's process) and on Keras 3 (in the importer's
child process, :mod:`.keras3`): the caller passes its ``keras`` module. This module imports
neither. Only Functional and Sequential models (and such models nested in them) can be
rebuilt; a subclassed model is left as it is (Keras 3 files are still exported with
``training=False``, which freezes those layers in the graph).
"""
from __future__ import annotations

import numpy as np

# identity at inference in tf_keras and Keras 3 alike (checked by tests/export/test_import_layer_kinds.py)
COMMON = ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
          "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
          "AlphaDropout", "ActivityRegularization")
TF_KERAS_ONLY = ("RandomHeight", "RandomWidth")
KERAS3_ONLY = ("RandomCrop", "AugMix", "RandAugment", "CutMix", "MixUp", "RandomColorDegeneration",
               "RandomColorJitter", "RandomElasticTransform", "RandomErasing", "RandomGaussianBlur", "RandomGrayscale",
               "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomSaturation",
               "RandomSharpness", "RandomShear", "Solarization")
# tf_keras layers frozen into what they compute at inference (recorded with what they became)
TF_KERAS_FROZEN = ("RandomCrop",)
EPSILON = 1e-7  # Keras' backend.epsilon(), the floor Normalization puts under sqrt(variance)
# how far the rebuilt model may stray from the original called with training=False (max |diff| / max |y|)
# (float rounding of the Normalization rewrite, grown through a deep net, stays far below it;
# a layer wrongly taken for an identity moves outputs by whole percents)
TOLERANCE = 1e-4


class InferenceFormError(ValueError):
    """The model without its training-only layers does not compute what the model does at inference."""


def training_only_classes(keras3: bool) -> frozenset[str]:
    """Class names removed from a model made by Keras 3 (``keras3``) or tf_keras."""
    return frozenset(COMMON + (KERAS3_ONLY if keras3 else TF_KERAS_ONLY))


def _is_graph_model(layer) -> bool:
    return type(layer).__name__ in ("Functional", "Sequential")


def _is_keras_own(layer) -> bool:
    module = type(layer).__module__
    return module.split(".")[0] in ("keras", "tf_keras")


def _rule(layer, keras3: bool) -> str | None:
    """What :func:`inference_form` does to a (non-model) layer: ``remove``, ``freeze`` (tf_keras
    ``RandomCrop``), ``rescaling`` (``Normalization``), ``cropping`` (tf_keras ``CenterCrop``), or ``None``."""
    if not _is_keras_own(layer):
        return None
    cls = type(layer).__name__
    if cls in training_only_classes(keras3):
        return "remove"
    if cls == "Normalization" and not getattr(layer, "invert", False):
        return "rescaling"
    if not keras3 and cls in TF_KERAS_FROZEN:
        return "freeze"
    if not keras3 and cls == "CenterCrop" and _static_crop(layer) is not None:
        return "cropping"
    return None


def inference_form(keras, model, *, keras3: bool) -> tuple[object, list[dict]]:
    """``model`` rebuilt without its training-only layers, and what was taken out.

    Args:
        keras: the ``keras`` module that loaded ``model`` (tf_keras, or Keras 3 in the child).
        model: a loaded model; Functional and Sequential models (and those nested in them)
            are rebuilt, any other model is returned as it is.
        keras3: ``model`` was loaded by Keras 3 (decides the class list and ``RandomCrop``).

    Returns:
        ``(model, removed)``: ``removed`` holds one ``{"name", "class", "as"}`` per layer taken
        out, ``as`` being ``"removed"`` (now an ``Identity``) or the layer it was frozen into
        (``"Resizing(24, 24, crop_to_aspect_ratio=True)"``), in the order the rebuild met them.
        The ``Normalization`` and ``CenterCrop`` rewrites are not listed. When nothing needs a
        change, the model itself and ``[]``.
    """
    removed: list[dict] = []
    cache: dict[int, object] = {}

    def replace(layer):
        if id(layer) in cache:  # a layer called at several places is replaced once
            return cache[id(layer)]
        cls, rule, new = type(layer).__name__, _rule(layer, keras3), layer
        if _is_graph_model(layer):
            new = rebuild(layer)
        elif rule == "remove":
            new = keras.layers.Identity(name=layer.name)
            removed.append({"name": layer.name, "class": cls, "as": "removed"})
        elif rule == "freeze":
            h, w = int(layer.height), int(layer.width)
            new = keras.layers.Resizing(h, w, interpolation="bilinear", crop_to_aspect_ratio=True, name=layer.name)
            removed.append({"name": layer.name, "class": cls, "as": f"Resizing({h}, {w}, crop_to_aspect_ratio=True)"})
        elif rule == "rescaling":
            new = _as_rescaling(keras, layer)
        elif rule == "cropping":
            new = keras.layers.Cropping2D(_static_crop(layer), name=layer.name)
        cache[id(layer)] = new
        return new

    def touched(layer) -> bool:
        if _is_graph_model(layer):
            return any(touched(sub) for sub in layer.layers)
        return _rule(layer, keras3) is not None

    def rebuild(m):
        return keras.models.clone_model(m, clone_function=replace) if touched(m) else m

    if not _is_graph_model(model):
        return model, []
    return rebuild(model), removed


def _static_crop(layer):
    """``((top, bottom), (left, right))`` a tf_keras ``CenterCrop`` cuts from an input of known size
    (``h_start = (H - height) // 2`` as it computes), or ``None`` (unknown size, or it would resize)."""
    try:
        _, h, w, _ = layer.input_shape
    except (AttributeError, RuntimeError, ValueError):  # unbuilt, or called on inputs of several sizes
        return None
    if h is None or w is None or h < layer.height or w < layer.width:
        return None
    top, left = (h - layer.height) // 2, (w - layer.width) // 2
    return (top, h - layer.height - top), (left, w - layer.width - left)


def _as_rescaling(keras, layer):
    """The ``Rescaling`` computing what a built ``Normalization`` layer computes (shapes as its mean's);
    the layer itself while it has no statistics yet."""
    if getattr(layer, "mean", None) is None or getattr(layer, "variance", None) is None:
        return layer
    mean = np.asarray(layer.mean, dtype=np.float64)
    sd = np.maximum(np.sqrt(np.asarray(layer.variance, dtype=np.float64)), EPSILON)
    shape = mean.shape[1:]  # the broadcast shape without the batch axis, e.g. (1, 1, C)
    scale, offset = (1.0 / sd).reshape(shape), (-mean / sd).reshape(shape)
    return keras.layers.Rescaling(scale.astype(np.float32).tolist(), offset.astype(np.float32).tolist(),
                                  name=layer.name)


def check_same_at_inference(original, rebuilt, *, seed: int = 0, n: int = 4, size: int = 32) -> float:
    """Max relative difference between ``rebuilt(x)`` and ``original(x, training=False)`` on
    ``n`` random images ``(n, H, W, C)`` float32 in 0-255 (H, W from the model, ``size`` when unknown).

    Raises:
        InferenceFormError: the difference is above :data:`TOLERANCE`.
    """
    shape = [d if d is not None else size for d in tuple(original.inputs[0].shape)[1:]]
    x = np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype(np.float32)
    want = np.asarray(original(x, training=False), dtype=np.float64)
    got = np.asarray(rebuilt(x, training=False), dtype=np.float64)
    if want.shape != got.shape:
        raise InferenceFormError(f"without its training-only layers the model outputs {got.shape}, "
                                 f"not {want.shape} as at inference")
    err = float(np.abs(want - got).max() / max(1.0, float(np.abs(want).max())))
    if not err <= TOLERANCE:
        raise InferenceFormError(f"without its training-only layers the model differs from the model at inference "
                                 f"by {err:.2e} (relative), more than {TOLERANCE:g}")
    return err


def check_deterministic(model, *, size: int = 32) -> None:
    """Refuse a model that gives different outputs twice for the same 2 random images ``(2, H, W, C)``
    float32 0-255: a SavedModel traced with its augmentation layers in training mode (Keras 3
    ``model.export``) augments at every call, and no graph surgery makes it a classifier again.

    Raises:
        InferenceFormError: the two outputs differ.
    """
    shape = [d if d is not None else size for d in tuple(model.inputs[0].shape)[1:]]
    x = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype(np.float32)
    if not np.array_equal(np.asarray(model(x)), np.asarray(model(x))):
        raise InferenceFormError("its serving signature gives different outputs for the same images, so it holds "
                                 "layers that act only in training (RandomFlip, Dropout, ...) traced in training "
                                 "mode, as Keras 3 model.export() does; import the .keras file instead (edgesmith "
                                 "takes those layers out) or export the SavedModel from a model called with "
                                 "training=False")


def removed_layers_note(removed: list[dict]) -> str | None:
    """One line saying which training-only layers an import took out (``None`` if none).

    Example: ``took out 3 layers that act only in training: 'random_flip' (RandomFlip), ...``
    """
    if not removed:
        return None
    said = [f"'{r['name']}' ({r['class']})" + ("" if r["as"] == "removed" else f" -> {r['as']} as at inference")
            for r in removed]
    n = len(removed)
    return f"took out {n} layer{'s' if n > 1 else ''} that act{'s' if n == 1 else ''} only in training: {', '.join(said)}"
