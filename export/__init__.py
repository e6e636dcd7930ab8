"""Export stage: TFLite and ONNX, float and int8 (conversion needs ``pip install edgesmith[train]``).

Staged, verb-first functions that compose: ``prune`` / ``cluster`` -> ``quantize_aware``
-> ``to_tflite`` / ``to_onnx`` -> ``quantize_onnx``; ``export`` runs the whole plan for a
run directory (made by ``edgesmith.train`` or ``edgesmith.importer``) and verifies every
file against the Keras model. Each format is one backend module (:mod:`.tflite`,
:mod:`.onnx`) that declares its variants (:mod:`.variants`).

:class:`ExportConfig`, the formats, variants, ONNX presets and calibration methods need no
TensorFlow (the CLI reads its choices from them); the converters import it on first use.
"""
from .config import ARTIFACTS, BACKENDS, FORMATS, VARIANTS, ExportConfig
from .finetune import FineTune
from .onnx import CALIBRATION_METHODS, PRESETS

__all__ = ["export", "ExportConfig", "ARTIFACTS", "BACKENDS", "FORMATS", "VARIANTS", "CALIBRATION_METHODS", "prune",
           "cluster", "FineTune", "fine_tune", "copy_model", "layer_sparsity", "quantize_aware", "fold_rescaling",
           "to_tflite", "to_onnx", "quantize_onnx", "PRESETS", "quantize_onnx_dynamic", "tflite_to_onnx",
           "diagnose"]

_LAZY = {"export": ".exporter", "cluster": ".cluster", "diagnose": ".diagnose", "fine_tune": ".finetune",
         "copy_model": ".finetune", "fold_rescaling": ".fold", "quantize_onnx": ".onnx",
         "quantize_onnx_dynamic": ".onnx", "tflite_to_onnx": ".onnx", "to_onnx": ".onnx", "prune": ".prune",
         "layer_sparsity": ".prune", "quantize_aware": ".qat", "to_tflite": ".tflite"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
