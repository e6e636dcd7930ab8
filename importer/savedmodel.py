"""A SavedModel's serving signature as a tf_keras layer: the route for Keras 3 models.

Keras 3 ``model.export(dir)`` (and ``tf.saved_model.save``) writes a SavedModel with no
Keras metadata; tf_keras cannot rebuild layers from it. :class:`SavedModelLayer` calls
its ``serving_default`` signature instead (TensorFlow graph code, no Python) and stores
the whole SavedModel inside the run's ``model.keras`` (as the layer's assets), so the
run stays one self-contained file that ``export`` loads in safe mode: the class is
registered as ``edgesmith>SavedModelLayer`` when this module is imported (``edgesmith.export``
imports it, so every export can load an imported run).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from edgesmith.tfshim import keras, tf

from .safety import ModelFileError

ENDPOINT = "serving_default"


def _signature(loaded, path):
    fn = getattr(loaded, "signatures", {}).get(ENDPOINT)
    if fn is None:
        raise ModelFileError(f"{path}: SavedModel has no '{ENDPOINT}' signature to call "
                             "(save it with Keras 3 model.export() or tf_keras model.save())")
    kwargs = fn.structured_input_signature[1]
    if len(kwargs) != 1 or len(fn.structured_outputs) != 1:
        raise ModelFileError(f"{path}: '{ENDPOINT}' takes {len(kwargs)} input(s) and returns "
                             f"{len(fn.structured_outputs)} output(s); expected one image input and one output")
    (name, spec), = kwargs.items()
    return fn, name, spec


@keras.saving.register_keras_serializable(package="edgesmith")
class SavedModelLayer(keras.layers.Layer):
    """Calls a SavedModel's ``serving_default`` signature: ``(N, H, W, C) float32 -> (N, K)``.

    Args:
        num_classes: K, the width of the output.
        source: SavedModel directory to load now (when importing); a reloaded layer gets
            its SavedModel from the ``.keras`` file's assets instead.
    """

    def __init__(self, num_classes: int, source: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.__dict__.update(_loaded=None, _fn=None, _arg=None, input_spec_tf=None, _dir=None)
        if source is not None:
            self._attach(Path(source))

    def _attach(self, path: Path) -> None:
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:  # a damaged SavedModel fails deep in TF
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelFileError(f"cannot load SavedModel {path} ({type(e).__name__}: {first[:300]})") from None
        # kept out of Keras' attribute tracking: the SavedModel's variables are not this layer's weights
        fn, arg, spec = _signature(loaded, path)
        self.__dict__.update(_loaded=loaded, _fn=fn, _arg=arg, input_spec_tf=spec, _dir=path)

    def call(self, x):
        if self._fn is None:  # rebuilding the graph from config, before load_assets ran
            return tf.zeros((tf.shape(x)[0], self.num_classes), tf.float32)
        y = next(iter(self._fn(**{self._arg: tf.cast(x, self.input_spec_tf.dtype)}).values()))
        return tf.cast(y, tf.float32)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.num_classes])

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}

    def save_assets(self, dir_path):
        shutil.copytree(self._dir, Path(dir_path) / "saved_model")

    def load_assets(self, dir_path):
        self._attach(Path(dir_path) / "saved_model")


def savedmodel_as_keras(path: str | Path) -> keras.Model:
    """A tf_keras model around the SavedModel at ``path`` (input shape from its signature).

    Raises:
        ModelFileError: unloadable, no ``serving_default`` signature, or not one
            ``(N, H, W, C)`` input and one ``(N, K)`` output.
    """
    path = Path(path)
    probe = SavedModelLayer(1, source=str(path), name="serving_default")
    spec = probe.input_spec_tf
    out = next(iter(probe._fn.structured_outputs.values()))
    if spec.shape.rank != 4 or out.shape.rank != 2 or out.shape[1] is None:
        raise ModelFileError(f"{path}: signature maps {spec.shape} to {out.shape}; expected (N, H, W, C) -> (N, K)")
    probe.num_classes = int(out.shape[1])
    inp = keras.Input(shape=tuple(spec.shape[1:]), name="images")
    return keras.Model(inp, probe(inp), name="savedmodel")
