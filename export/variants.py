"""What an export backend declares: its variants, each with a converter and a method line.

A backend module (:mod:`.tflite`, :mod:`.onnx`) lists its variants in ``VARIANTS``, a
tuple of :class:`Variant`; :mod:`.config` plans artifacts from those declarations and
:mod:`.exporter` runs each one's ``convert`` on a :class:`Job`. A new format plugs in by
adding a module with a ``VARIANTS`` tuple to :data:`edgesmith.export.config.BACKENDS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Job:
    """One artifact to convert: the Keras source model and everything a converter may read.

    Attributes:
        model: the float (or QAT) tf_keras source model, taking ``(N, H, W, C)`` float32 pixels 0-255.
        path: the file to write (atomically).
        source: ``base``, ``pruned``, ``clustered``, ``qat``, ``pruned_qat`` or ``clustered_qat``.
        calibration: ``(M, H, W, C) uint8`` training images (representative dataset / calibration reader).
        labels: class names, embedded in the file.
        io_dtype: TFLite full-integer input/output type, ``uint8`` or ``int8``.
        calibration_method: ONNX static quantization calibration (``minmax``, ``entropy``, ``percentile``).
        onnx_preset: ONNX int8 layout (:data:`edgesmith.export.onnx.PRESETS`).
        sibling: ``(format, variant) -> Path`` of the same source's file of another variant
            (written earlier in the plan, or absent).
        scratch: a temporary folder for intermediate files.
    """

    model: Any
    path: Path
    source: str
    calibration: np.ndarray
    labels: list[str]
    io_dtype: str
    calibration_method: str
    onnx_preset: str
    sibling: Callable[[str, str], Path]
    scratch: Path

    @property
    def qat(self) -> bool:
        """Whether the source model was quantization-aware trained (it carries its own ranges)."""
        return "qat" in self.source


@dataclass(frozen=True)
class Variant:
    """One kind of file a backend writes (``fp32``, ``int8``, ...).

    Attributes:
        format: the backend, also the file suffix: ``tflite`` or ``onnx``.
        name: the variant as the user names it (``--variants``).
        precision: recorded in the manifest: ``fp32``, ``fp16``, ``dynamic`` or ``int8``.
        suffix: of artifact and file names (``tflite_<suffix>``, ``model_<suffix>.<format>``).
        convert: writes ``job.path`` from ``job.model``.
        describe: the one-line method recorded for the artifact.
        needs_float_parent: made from (or diagnosed against) the fp32 file of its format,
            so an explicit artifact list must include that float parent.
    """

    format: str
    name: str
    precision: str
    suffix: str
    convert: Callable[[Job], Any]
    describe: Callable[[Job], str]
    needs_float_parent: bool = False

    @property
    def float_compute(self) -> bool:
        """Computes in float (fp32, fp16 weights): held to the float agreement floor."""
        return self.precision in ("fp32", "fp16")


def fixed(text: str) -> Callable[[Job], str]:
    """A ``describe`` that always says ``text``."""
    return lambda job: text
