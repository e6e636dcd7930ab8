"""TFLite conversion: float32, and the post-training quantization (PTQ) variants.

Variants (TFLite post-training quantization guide, ai.google.dev/edge/litert/models/post_training_quantization):
``fp32``; ``fp16`` (float16 weights, float compute); ``dynamic`` (dynamic-range: int8
weights, activations quantized on the fly); ``int8`` (full-integer: per-channel int8
weights, int8 activations calibrated on a representative dataset, uint8 or int8 I/O).
A QAT model (:mod:`.qat`) converts with ``int8`` and carries its own ranges.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from edgesmith.core.fsutil import atomic_path
from edgesmith.train._keras import keras, tf


def _representative(images: np.ndarray) -> "callable":
    def gen() -> Iterator[list[np.ndarray]]:
        for img in images:
            yield [img[None].astype(np.float32)]
    return gen


PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def to_tflite(model: keras.Model, path: str | Path, *, precision: str = "fp32",
              representative: np.ndarray | None = None, io_dtype: str = "uint8") -> Path:
    """Convert a float Keras model to a ``.tflite`` file.

    Args:
        model: float32 tf_keras model taking ``(N, H, W, C)`` float32 pixels 0-255.
        path: output file; written atomically.
        precision: ``"fp32"``; ``"fp16"`` (float16 weights); ``"dynamic"`` (dynamic-range
            int8 weights); or ``"int8"`` for full-integer PTQ (per-channel int8 weights,
            int8 activations calibrated on ``representative``).
        representative: ``(M, H, W, C) uint8`` training images, the representative
            dataset for int8 (a few hundred suffice).
        io_dtype: int8 only: ``"uint8"`` (raw pixels go straight in: scale 1, zero
            point 0 for a 0-255 input) or ``"int8"``.

    Returns:
        ``path``.

    Raises:
        ValueError: unknown precision or io_dtype, or int8 without a representative dataset.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown TFLite precision {precision!r}; choose {', '.join(PRECISIONS)}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 conversion needs a representative dataset")
        if io_dtype not in ("uint8", "int8"):
            raise ValueError(f"io_dtype must be uint8 or int8, got {io_dtype!r}")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)
    with warnings.catch_warnings():
        # Two warnings TF gives on every int8 conversion, with nothing for the user to act on: its own
        # calibrator (tensorflow/lite/python/optimize/calibrator.py) still runs the deprecated
        # tf.lite.Interpreter, and with uint8/int8 I/O it asks for the input statistics of the old
        # TOCO path, which the representative dataset's calibration replaces.
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        flatbuffer = converter.convert()
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return Path(path)
