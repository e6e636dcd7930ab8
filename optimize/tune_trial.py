"""One ``edgesmith tune`` trial: train, report every epoch to Optuna, stop early, score.

The trial trains with :func:`edgesmith.train.train` and :class:`TrialReporter` among its Keras
callbacks. When the pruner says stop, or the deadline passes, the reporter raises out of
``fit`` (a trial runs without TensorBoard and the progress bar, the callbacks that hold files
open), the trial's ``RUN.partial`` work directory is deleted and ``optuna.TrialPruned`` is
raised; nothing of a stopped trial stays on disk.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from edgesmith.train import checkpoint as _ckpt
from edgesmith.tfshim import keras
from edgesmith.train.config import TrainConfig

from edgesmith.core.errors import ConfigError

CALIBRATION_SIZE = 256  # training images in the int8 representative dataset, as `edgesmith export`


class Stop(Exception):
    """Raised out of ``fit`` to end a trial: ``"pruned"`` or ``"deadline"``."""


class TrialReporter(keras.callbacks.Callback):
    """Reports validation top-1 to an Optuna trial after each epoch (step = epochs done) and raises
    :class:`Stop` when the trial should be pruned or ``deadline`` (``time.monotonic()``) passes.

    The pruner is not asked after the last of ``epochs``: a trial that trained to the end is scored
    (Hyperband's top rung equals the last epoch, where pruning would only discard a finished result).

    Attributes:
        last: validation top-1 after the last finished epoch, or None.
        epochs: epochs finished.
        fit_s: seconds from the first epoch's start to the end of training (so far), s.
    """

    def __init__(self, trial, deadline: float, epochs: int):
        super().__init__()
        self.trial, self.deadline, self.total = trial, deadline, epochs
        self.last, self.epochs, self.fit_s = None, 0, 0.0
        self._t0 = None

    def on_train_begin(self, logs=None):
        if self._t0 is None:  # progressive resizing fits twice
            self._t0 = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() >= self.deadline:
            self._clock()
            raise Stop("deadline")

    def on_epoch_end(self, epoch, logs=None):
        self._clock()
        acc = (logs or {}).get("val_accuracy")
        if acc is None:
            raise ConfigError("tune needs validation accuracy each epoch (val_split > 0)",
                              field="TrainConfig.val_split")
        self.last, self.epochs = float(acc), epoch + 1
        self.trial.report(self.last, step=self.epochs)
        if self.epochs < self.total and self.trial.should_prune():
            raise Stop("pruned")

    def on_train_end(self, logs=None):
        self._clock()

    def _clock(self):
        self.fit_s = time.monotonic() - self._t0 if self._t0 is not None else 0.0


def run_trial(trial, config: TrainConfig, run_dir: Path, deadline: float, objective: str) -> float:
    """Train ``config`` into ``run_dir`` as Optuna ``trial`` and return its objective.

    Side effects: sets the trial's user attributes ``epochs``, ``fit_s`` (s), ``post_s`` (s after
    the last epoch: writing the run, int8 export and scoring) and, when stopped other than by the
    pruner, ``note`` (``deadline`` or ``diverged``). ``run_dir`` holds the finished run on return;
    nothing is left of a stopped trial.

    Args:
        objective: ``float``: validation top-1 of the Keras model after the last epoch;
            ``int8``: validation top-1 of its full-integer int8 TFLite file (LiteRT).
        deadline: ``time.monotonic()`` value at which training stops (the trial is then pruned).

    Returns:
        The objective, a fraction in [0, 1].

    Raises:
        optuna.TrialPruned: the pruner stopped the trial, the deadline passed, or the loss became NaN.
        DataError: the dataset cannot be loaded.
    """
    import optuna
    from edgesmith.train.checkpoint import TrainingDiverged
    from edgesmith.train.loop import train

    reporter = TrialReporter(trial, deadline, config.epochs)
    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)  # each trial's new model "retraces" fit/evaluate: expected, not a problem
    try:
        run = train(config, run_dir, overwrite=True, callbacks=[reporter], evaluate_test=False)  # never the test split
    except (Stop, TrainingDiverged) as e:
        shutil.rmtree(_ckpt.work_dir(run_dir), ignore_errors=True)
        reason = str(e) if isinstance(e, Stop) else "diverged"
        _record(trial, reporter, 0.0, note=None if reason == "pruned" else reason)
        raise optuna.TrialPruned(reason) from None
    finally:
        tf_log.setLevel(level)
        keras.backend.clear_session()
    end_fit = time.monotonic()
    value = reporter.last
    if objective == "int8":
        value = int8_top1(run.model, config)
    _record(trial, reporter, time.monotonic() - end_fit)
    return value


def _record(trial, reporter: TrialReporter, post_s: float, note: str | None = None) -> None:
    trial.set_user_attr("epochs", reporter.epochs)
    trial.set_user_attr("fit_s", round(reporter.fit_s, 2))
    trial.set_user_attr("post_s", round(post_s, 2))
    if note:
        trial.set_user_attr("note", note)


def int8_top1(model_path: Path, config: TrainConfig) -> float:
    """Validation top-1 of the full-integer int8 TFLite export of the Keras model at ``model_path``.

    The model is exported as ``edgesmith export`` does it (input Rescaling folded into the first
    layer, uint8 input, per-channel int8 weights, activations calibrated on
    :data:`CALIBRATION_SIZE` training images), then run with LiteRT
    (:func:`edgesmith.runtime.load`) on ``config``'s validation images (``ROOT/val`` when the folder
    has one, else the hold-out of train): the same images as the training run's ``val_accuracy``,
    never the test split.

    Returns:
        Top-1 accuracy, a fraction in [0, 1].

    Raises:
        DataError: the dataset cannot be loaded.
    """
    from edgesmith.export.fold import fold_rescaling
    from edgesmith.export.tflite import to_tflite
    from edgesmith.runtime import load
    from edgesmith.train.loop import hold_out

    from edgesmith.core.data import NAMED_SOURCES, has_split, load_split

    train = load_split(config.data, "train")
    if config.data.source not in NAMED_SOURCES and has_split(config.data, "val"):  # as the training run validated
        fit, val = train, load_split(config.data, "val")
    else:
        fit, val = hold_out(train, config.val_split, config.seed)
    model = fold_rescaling(keras.models.load_model(model_path, compile=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = to_tflite(model, Path(tmp) / "model_int8.tflite", precision="int8",
                         representative=fit.images[:CALIBRATION_SIZE], io_dtype="uint8")
        probs = load(path, device="cpu").predict(val.images)
    keras.backend.clear_session()
    return float(np.mean(probs.argmax(1) == val.labels))
