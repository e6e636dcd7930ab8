"""Searches that sit above the stages and drive them.

* ``edgesmith optimize`` (:mod:`.space`, :mod:`.search`, :mod:`.report`): export candidates of a
  run (formats, int8 forms, calibration methods, float fallback) and bench them together.
* ``edgesmith tune`` (:mod:`.tune`, :mod:`.tune_trial`, :mod:`.tune_report`): train trials under a
  time budget (Optuna), scored on the float model or its int8 export.

:class:`OptimizeConfig`, :func:`candidates` and :mod:`.tune`'s config need no TensorFlow;
:func:`optimize` and a tune trial import the train and export stages (TensorFlow, the
``[train]`` extra) and the benchmarks when they run.

Example::

    from edgesmith.optimize import OptimizeConfig, optimize
    result = optimize("runs/resnet8", "runs/resnet8-opt", OptimizeConfig(budget_s=600, accuracy_budget=0.5))
"""
from .space import Candidate, OptimizeConfig, candidates, export_command

__all__ = ["Candidate", "OptimizeConfig", "candidates", "export_command", "optimize"]


def __getattr__(name: str):
    if name == "optimize":
        from .search import optimize

        return optimize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
