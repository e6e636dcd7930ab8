"""Training stage: models, input pipeline, loop.

:mod:`.config` (TrainConfig, the choices and presets) needs no TensorFlow, so a config can be
built and checked anywhere; training itself (``train``, ``build_model``) needs the ``[train]``
extra and imports TensorFlow on first use, raising
:class:`~edgesmith.core.errors.BackendUnavailable` with the install line when it is missing.
"""
from .config import PRESETS, TrainConfig, apply_preset, preset_config

__all__ = ["TrainConfig", "PRESETS", "apply_preset", "preset_config", "train", "resume", "build_model", "MODELS"]

_LAZY = {"train": ".loop", "resume": ".loop", "build_model": ".models", "MODELS": ".models"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
