"""The one place that decides which Keras edgesmith uses: ``tf_keras`` (Keras 2).

TF-MOT (pruning, QAT) rejects Keras 3 models, so every model is built with tf_keras.
Everything else imports ``keras`` and ``tf`` from here.
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
