"""The TensorFlow shim: the one place that decides which Keras edgesmith uses, ``tf_keras`` (Keras 2).

TF-MOT (pruning, QAT) rejects Keras 3 models, so every model is built with tf_keras. The stages
that use TensorFlow (train, importer, export, optimize) import ``keras`` and ``tf`` from here; the
import contracts in pyproject.toml keep core, runtime and benchmarks from importing it, or
TensorFlow, at all. export also imports TF-MOT, tf2onnx and TensorFlow's MLIR quantizer directly,
and the importer runs Keras 3 only in a child process.
"""
from __future__ import annotations

from edgesmith.core.quiet import quiet_environment, quiet_native_output

# TF's C++ start-up chatter (cuda drivers, oneDNN, absl) stays out of the output unless verbose:
# its log level is read once, at import, and some lines come before it is read at all.
quiet_environment()

try:
    with quiet_native_output():
        import tensorflow as tf  # noqa: E402
        import tf_keras as keras  # noqa: E402
except ImportError as e:  # pragma: no cover - exercised on a runtime-only install
    from edgesmith.core.errors import BackendUnavailable

    raise BackendUnavailable(f"training and export need the [train] extra ({e.name} missing): "
                             "pip install 'edgesmith[train]'") from None

__all__ = ["tf", "keras"]
