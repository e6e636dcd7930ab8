"""Export stage (needs ``pip install edgesmith[train]``): TFLite and ONNX, float and int8."""
from .exporter import ARTIFACTS, ExportConfig, export
from .onnx import quantize_onnx, to_onnx
from .tflite import to_tflite
from . import byom_savedmodel  # noqa: F401  registers SavedModelLayer, so imported Keras 3 runs load

__all__ = ["export", "ExportConfig", "ARTIFACTS", "to_tflite", "to_onnx", "quantize_onnx"]
