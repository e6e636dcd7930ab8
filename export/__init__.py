"""Export stage (needs ``pip install edgesmith[train]``): TFLite and ONNX, float and int8.

Staged, verb-first functions that compose: ``prune`` -> ``quantize_aware`` ->
``to_tflite`` / ``to_onnx`` -> ``quantize_onnx``; ``export`` runs the whole plan for a run
directory and verifies every file against the Keras model; ``import_model`` brings a model
trained elsewhere into a run directory first.
"""
from . import byom_savedmodel  # noqa: F401  registers SavedModelLayer, so imported Keras 3 runs load
from .byom import import_model
from .diagnose import diagnose
from .exporter import ARTIFACTS, ExportConfig, export
from .fold import fold_rescaling
from .onnx import PRESETS, quantize_onnx, to_onnx
from .onnx_variants import quantize_onnx_dynamic, tflite_to_onnx
from .prune import FineTune, layer_sparsity, prune
from .qat import quantize_aware
from .tflite import to_tflite

__all__ = ["export", "ExportConfig", "ARTIFACTS", "import_model", "prune", "FineTune", "layer_sparsity",
           "quantize_aware", "fold_rescaling", "to_tflite", "to_onnx", "quantize_onnx", "PRESETS",
           "quantize_onnx_dynamic", "tflite_to_onnx", "diagnose"]
