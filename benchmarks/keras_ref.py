"""The Keras reference runtime: the trained ``model.keras`` run by TensorFlow itself.

Only ever imported by :mod:`.worker` in a child process that was asked for a ``keras-*``
runtime; TensorFlow is imported inside :class:`KerasRunner`, never at module level.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable


class KerasRunner:
    """``predict((N, H, W, C) uint8) -> (N, K) float32`` with a tf_keras model.

    The forward pass is wrapped in one ``tf.function`` (graph mode, traced once per batch
    shape during warm-up), the fair way to time TensorFlow; ``model.predict`` adds
    milliseconds of per-call overhead.
    """

    backend = "keras"

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int = 1):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if device == "cpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # must precede the TF import
        try:  # imported here, in the child process that runs this runtime, never by the bench itself
            tf = importlib.import_module("tensorflow")
            tf_keras = importlib.import_module("tf_keras")
        except ImportError as e:
            raise BackendUnavailable(f"the keras runtimes need the [train] extra ({e.name} missing): "
                                     "pip install 'edgesmith[train]'") from None
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        if device == "gpu" and not tf.config.list_physical_devices("GPU"):
            raise BackendUnavailable("TensorFlow sees no GPU (install tensorflow[and-cuda] and a CUDA driver)")
        self.path, self.device_kind, self.threads = Path(path), device, threads
        self.providers = (f"tensorflow-{device}",)
        from edgesmith.importer import savedmodel  # noqa: F401  the layer an imported Keras 3 model lives in

        self._model = tf_keras.models.load_model(self.path, compile=False)
        self._tf = tf
        self._fn = tf.function(lambda x: self._model(x, training=False), reduce_retracing=True)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for ``(N, H, W, C) uint8`` pixels, as ``(N, K) float32``."""
        x = self._tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
        return np.asarray(self._fn(x), dtype=np.float32)
