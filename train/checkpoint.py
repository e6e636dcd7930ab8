"""Resumable training: a checkpoint every epoch in a work directory next to the run.

A run directory appears only when training is complete (it is built in a temporary sibling
and renamed into place), so the state of an unfinished run lives in ``RUN.partial/``:

* ``config.json``  the TrainConfig, so ``edgesmith train --resume RUN`` needs nothing else;
* ``state.json``   epochs done, their history rows and training seconds so far, and the name of
  the newest checkpoint; rewritten atomically after each checkpoint, so it always names a
  complete one;
* ``ckpt/epoch-K.*`` a ``tf.train.Checkpoint`` of the model and optimizer (weights, BatchNorm
  statistics, Adam moments and the step counter, which drives the learning-rate schedule);
* ``tensorboard/`` the TensorBoard logs, moved into the run directory at the end.

The directory is removed once the run directory is in place. A NaN loss stops training
(like ``keras.callbacks.TerminateOnNaN``) without overwriting the last good checkpoint.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from edgesmith.core.errors import ConfigError, EdgesmithError
from edgesmith.core.fsutil import write_json

from edgesmith.tfshim import keras, tf
from .strategy import cluster_role, tf_config


class TrainingDiverged(EdgesmithError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def work_dir(out: Path, task_index: int = 0) -> Path:
    """``RUN.partial`` for the chief, ``RUN.partial-workerI`` for other workers."""
    suffix = ".partial" if task_index == 0 else f".partial-worker{task_index}"
    return out.parent / f"{out.name}{suffix}"


def read_state(work: Path) -> dict | None:
    """The ``state.json`` of an unfinished run, or None when none was saved yet."""
    path = work / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ConfigError(f"{path} is unreadable; delete {work} to start the run again") from None


def check_resumable(out: Path, work: Path) -> None:
    """Check that ``work`` holds an unfinished run of ``out`` to resume.

    Raises:
        ConfigError: ``out`` is already complete, or ``work`` has no ``config.json``.
    """
    if (out / "manifest.json").is_file():
        raise ConfigError(f"{out} is already complete; nothing to resume")
    if not (work / "config.json").is_file():
        raise ConfigError(f"no unfinished run to resume at {out} (expected {work / 'config.json'})")


def load_config_dict(out: Path) -> dict:
    """The TrainConfig (as a dict) an unfinished run at ``out`` was started with, read from this
    process's own work directory: ``RUN.partial``, or ``RUN.partial-workerI`` for the multi-worker
    rank ``TF_CONFIG`` gives, so workers on machines without a shared filesystem resume too.

    Raises:
        ConfigError: as :func:`check_resumable`, or ``TF_CONFIG`` is invalid.
    """
    cfg = tf_config()
    work = work_dir(out, cluster_role(cfg)[1] if cfg else 0)
    check_resumable(out, work)
    return json.loads((work / "config.json").read_text(encoding="utf-8"))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer after every finite epoch; stops training on a NaN loss.

    Attributes:
        history: every finished epoch's logs so far (including those before a resume).
        train_seconds: wall-clock seconds spent in finished epochs, s.
        nan_at: ``(epoch, first_step, last_step)`` (1-based): the loss stopped being finite within
            these steps (one step unless the model runs several per ``tf.function`` call), else None.
    """

    def __init__(self, work: Path, state: dict | None):
        super().__init__()
        self.work = work
        state = state or {}
        self.epochs_done = int(state.get("epoch", 0))
        self.history: dict[str, list[float]] = {k: list(v) for k, v in state.get("history", {}).items()}
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.nan_at: tuple[int, int, int] | None = None
        self._epoch, self._t0, self._last_batch = 0, 0.0, -1

    def checkpoint(self) -> "tf.train.Checkpoint":
        return tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer)

    def restore(self, state: dict) -> None:
        """Load the checkpoint ``state`` names into the (compiled) model and its optimizer."""
        opt = self.model.optimizer
        inner = getattr(opt, "inner_optimizer", opt)
        inner.build(self.model.trainable_variables)  # create Adam slots so they restore eagerly
        self.checkpoint().read(str(self.work / "ckpt" / state["checkpoint"])).assert_existing_objects_matched()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._t0, self._last_batch = epoch, time.perf_counter(), -1

    def on_train_batch_end(self, batch, logs=None):
        # with steps_per_execution k, Keras calls this after every k-th step with the last one's index
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nan_at = (self._epoch + 1, self._last_batch + 2, batch + 1)
            self.model.stop_training = True
        self._last_batch = batch

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_at is not None:
            return  # keep the last good checkpoint
        self.train_seconds += time.perf_counter() - self._t0
        for k, v in (logs or {}).items():
            if k != "lr" and isinstance(v, (int, float)):
                self.history.setdefault(k, []).append(float(v))
        self.epochs_done = epoch + 1
        name = f"epoch-{self.epochs_done}"
        ckpt_dir = self.work / "ckpt"
        self.checkpoint().write(str(ckpt_dir / name))
        write_json(self.work / "state.json", {"epoch": self.epochs_done, "checkpoint": name,
                                              "history": self.history,
                                              "train_seconds": round(self.train_seconds, 3)})
        for old in ckpt_dir.glob("epoch-*"):  # state.json now names the new one
            if not old.name.startswith(name + "."):
                old.unlink(missing_ok=True)

    def diverged_error(self) -> TrainingDiverged:
        epoch, first, last = self.nan_at
        steps = f"step {last}" if first == last else f"steps {first}-{last}"
        kept = (f"the last good checkpoint (epoch {self.epochs_done}) is kept in {self.work}"
                if self.epochs_done else "no epoch finished, so there is no checkpoint")
        return TrainingDiverged(f"training loss became NaN at epoch {epoch}, {steps}; stopped: {kept}. "
                                "Try a lower learning_rate or precision fp32.", field="TrainConfig.learning_rate")


def remove(work: Path) -> None:
    """Delete a finished run's work directory."""
    shutil.rmtree(work, ignore_errors=True)
