"""Import stage (needs ``pip install edgesmith[train]``): bring a model trained elsewhere into a run.

:func:`import_model` checks a ``.keras`` / ``.h5`` file or SavedModel directory without
running code from it (:mod:`.safety`), takes out the layers that act only in training
(:mod:`.training_only`), wraps it to take raw uint8-range pixels, measures
it and writes a run directory with an ``import`` stage; :func:`resolve_run` is what a
command taking "a run or a model file" calls. Importing this package does not import
TensorFlow; :mod:`.savedmodel` (imported by ``edgesmith.export``) registers the layer that
imported Keras 3 SavedModels live in.

Stages: ``train | import -> export -> bench``.
"""
from .importer import (
    OUTPUTS,
    PREPROCESS,
    ImportConfig,
    ModelMismatchError,
    import_model,
    import_summary,
    read_labels,
)
from .resolve import default_out, resolve_run
from .safety import ModelFileError, UnsafeModelError, inspect_model_file

__all__ = ["import_model", "import_summary", "resolve_run", "default_out", "ImportConfig", "PREPROCESS", "OUTPUTS",
           "read_labels", "inspect_model_file", "ModelFileError", "UnsafeModelError", "ModelMismatchError"]
