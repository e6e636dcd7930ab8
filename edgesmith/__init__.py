"""edgesmith: train, shrink, export, run and benchmark image classifiers for edge devices.

Stages (each importable on its own; only ``train`` and ``export`` need TensorFlow):

* :mod:`edgesmith.train` - models and training (``pip install edgesmith[train]``)
* :mod:`edgesmith.export` - TFLite and ONNX conversion, int8 quantization, manifest
* :mod:`edgesmith.runtime` - ``load(path).predict(images)`` over LiteRT and ONNX Runtime
* :mod:`edgesmith.benchmarks` - accuracy and latency across artifacts and targets
"""
__version__ = "0.2.0"
