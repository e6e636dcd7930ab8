"""The training loop: a TrainConfig in, a complete run directory out.

A run is built in ``RUN.partial/`` (checkpoint each epoch, TensorBoard logs; see
:mod:`.checkpoint`) and the finished run directory is renamed into place at the end, so an
interrupted run can be resumed (``train(..., resume=True)``, ``edgesmith train --resume RUN``)
and a half-written run directory never exists.
"""
from __future__ import annotations

import csv
import functools
import math
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from edgesmith.core.cpuinfo import cpu_info
from edgesmith.core.data import Split, load_dataset
from edgesmith.core.errors import ConfigError
from edgesmith.core.fsutil import atomic_path, write_json
from edgesmith.core.rundir import RunDir
from edgesmith.core.stages import TrainStage, create_run_manifest, model_record

from . import checkpoint as _ckpt
from .config import TrainConfig, resolve_augment
from . import precision as _precision
from ._keras import keras, tf
from .input import make_dataset
from .models import build_model
from .plots import plot_curves
from .recipe import compile_model
from .strategy import make_strategy


def hold_out(train: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """The training split as ``(fit, validation)``: a seeded random ``fraction`` held out for
    validation (``seed + 1``), so a run and its tune trial hold out the same images; validation
    is None when the fraction rounds to no image."""
    n_val = int(round(len(train) * fraction))
    if n_val == 0:
        return train, None
    idx = np.random.default_rng(seed + 1).permutation(len(train))
    val, fit = idx[:n_val], idx[n_val:]
    return (Split(train.images[fit], train.labels[fit], train.class_names),
            Split(train.images[val], train.labels[val], train.class_names))


def _float32_copy(model, config: TrainConfig, input_shape, num_classes):
    """Rebuild the architecture under float32 and copy the weights (bf16 graphs do not convert to TFLite)."""
    keras.mixed_precision.set_global_policy("float32")
    clone = build_model(config.model, input_shape, num_classes, **{**config.model_options(), "weights": "none"})
    for src, dst in zip(model._flatten_layers(), clone._flatten_layers()):
        dst.trainable = src.trainable  # get_weights() lists trainable weights first
    clone.set_weights(model.get_weights())
    return clone


def _write_history(history: dict[str, list[float]], path: Path) -> None:
    keys = list(history)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *keys])
        for i in range(len(history[keys[0]]) if keys else 0):
            w.writerow([i + 1, *(f"{history[k][i]:.6g}" for k in keys)])



def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None  # tf.summary needs the package


def _prepare_work(config: TrainConfig, out: Path, work: Path, *, overwrite: bool, resume: bool,
                  chief: bool) -> dict | None:
    """Check ``out``/``work`` against the mode; returns the saved state when resuming."""
    if resume:
        _ckpt.check_resumable(out, work)
        return _ckpt.read_state(work)
    if chief and out.exists() and not overwrite:
        raise ConfigError(f"run directory {out} already exists (choose another --out or pass --overwrite)")
    if work.exists():
        if not overwrite:
            raise ConfigError(f"an interrupted run exists at {work}: pass --resume {out} to continue it, "
                              "or --overwrite to start again")
        shutil.rmtree(work)
    return None


def resume(out: str | Path) -> RunDir | None:
    """Continue the interrupted run at ``out`` from its last epoch checkpoint, with the config it
    started with (read from this worker's own ``RUN.partial``); see :func:`train`.

    Raises:
        ConfigError: nothing to resume at ``out`` (or the run is already complete).
    """
    config = TrainConfig.from_dict(_ckpt.load_config_dict(Path(out)))
    return train(config, out, resume=True)


def train(config: TrainConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
          callbacks: Sequence["keras.callbacks.Callback"] = ()) -> RunDir | None:
    """Train ``config.model`` on ``config.data`` and write a run directory at ``out``.

    Side effects: checkpoints every epoch into ``RUN.partial/`` (removed at the end) and
    creates ``out`` (see :mod:`edgesmith.core.rundir` for the layout; plus ``tensorboard/``),
    built in a temporary sibling and renamed into place only when complete.

    Args:
        resume: continue the unfinished run at ``out`` from its last checkpoint (``config``
            should be the one it started with, see :func:`.checkpoint.load_config_dict`).
        callbacks: extra Keras callbacks for ``fit``.

    Returns:
        The :class:`RunDir` of the finished run (``metrics.json`` holds test top-1), or None
        on a non-chief worker of a multi-worker run (only the chief writes the run).

    Raises:
        ConfigError: ``out`` exists and ``overwrite`` is false, an interrupted run is in the way,
            nothing to resume, or the config is invalid.
        DataError: the dataset cannot be loaded.
        TrainingDiverged: the loss became NaN (the last good checkpoint is kept for ``--resume``).
    """
    out = Path(out)
    if not resume and out.exists() and not overwrite:  # fail before any TensorFlow start-up
        raise ConfigError(f"run directory {out} already exists (choose another --out or pass --overwrite)")
    placement = make_strategy(config.strategy)  # first TF call: collectives are set up at start-up
    work = _ckpt.work_dir(out, placement.task_index)
    state = _prepare_work(config, out, work, overwrite=overwrite, resume=resume, chief=placement.is_chief)
    train_split, test_split = load_dataset(config.data)
    fit_split, val_split = hold_out(train_split, config.val_split, config.seed)
    input_shape, num_classes = train_split.image_shape, len(train_split.class_names)
    if config.low_res_epochs:
        config.low_res_hw(input_shape[:2])  # refuse a bad --low-res before any work
    augment = _augment_choice(config, input_shape, log=placement.is_chief and not config.quiet)
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "config.json", config.to_dict())

    keras.utils.set_random_seed(config.seed + (state or {}).get("epoch", 0))
    policy = _precision.resolve_policy(config.precision, gpus=len(tf.config.list_physical_devices("GPU")))
    global_batch = config.batch_size * placement.replicas
    peak_lr = config.learning_rate * placement.replicas
    steps = math.ceil(len(fit_split) / global_batch)

    @functools.cache  # one dataset per resolution, shared by the phases (resnet50v2 has two)
    def fit_data(resize_to):
        return make_dataset(fit_split.images, fit_split.labels, batch_size=global_batch, training=True,
                            seed=config.seed, augment=augment["preset"], use_cutout=config.cutout, resize_to=resize_to)

    val_ds = (make_dataset(val_split.images, val_split.labels, batch_size=max(global_batch, 256), training=False)
              if val_split else None)
    saver = _ckpt.EpochCheckpoint(work, state)
    extra = [*callbacks, *_callbacks(config, placement, work, steps, has_val=val_split is not None)]
    keras.mixed_precision.set_global_policy(policy)
    try:
        with placement.strategy.scope():
            model_shape = (None, None, input_shape[-1]) if config.low_res_epochs else input_shape
            model = build_model(config.model, model_shape, num_classes, **config.model_options())
        done = saver.epochs_done
        for start, end, frozen in config.phases():
            if done >= end:
                continue
            with placement.strategy.scope():
                if frozen or config.model == "resnet50v2":
                    model.get_layer("backbone").trainable = not frozen
                compile_model(model, peak_lr=peak_lr if start == 0 else peak_lr / 10,
                              schedule_kind=config.schedule, steps_per_epoch=steps, epochs=end - start,
                              weight_decay=config.weight_decay, label_smoothing=config.label_smoothing,
                              optimizer=config.optimizer, policy=policy,
                              steps_per_execution=config.steps_per_execution)
                _restore(model, saver, state, work, done, start)
            done = _fit_phase(model, config, saver, extra, fit_data, val_ds, done, start, end, input_shape[:2])
            if model.stop_training or done < end:
                break
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if not placement.is_chief:
        _ckpt.remove(work)
        return None
    return _finish(config, out, work, model, saver, placement, policy, train_split, fit_split, val_split,
                   test_split, global_batch, peak_lr, augment)


def _augment_choice(config: TrainConfig, input_shape, *, log: bool) -> dict:
    """``{"asked", "preset", "why"}``: the augmentation ``config.augment`` resolves to on these images
    (``auto`` depends on the data, see :func:`.config.resolve_augment`), printed to the training log."""
    preset, why = resolve_augment(config.augment, input_shape, config.data.source)
    if log:
        from rich.console import Console

        Console(stderr=True).print(f"augmentation: {preset} ({why})", highlight=False)
    return {"asked": config.augment, "preset": preset, "why": why}


def _callbacks(config: TrainConfig, placement, work: Path, steps: int, *, has_val: bool) -> list:
    """Early stopping, TensorBoard (chief only) and the progress bar (chief, unless quiet)."""
    extra = []
    if config.patience:
        extra.append(keras.callbacks.EarlyStopping(monitor="val_loss" if has_val else "loss",
                                                   patience=config.patience, restore_best_weights=True))
    if config.tensorboard and placement.is_chief and _has_tensorboard():
        extra.append(keras.callbacks.TensorBoard(log_dir=str(work / "tensorboard"), profile_batch=0))
    if not config.quiet and placement.is_chief:
        from .progress import RichProgress

        extra.append(RichProgress(config.epochs, steps))
    return extra


def _restore(model, saver, state: dict | None, work: Path, done: int, start: int) -> None:
    """Attach the checkpoint saver; on resume, restore weights + optimizer mid-phase, or only the
    weights when the phase starts afresh (resnet50v2's fine-tune phase has a new optimizer)."""
    saver.set_model(model)
    if state and done > start:
        saver.restore(state)
    elif state and done:
        tf.train.Checkpoint(model=model).read(str(work / "ckpt" / state["checkpoint"])).expect_partial()


def _fit_phase(model, config: TrainConfig, saver, extra: list, fit_data, val_ds, done: int, start: int,
               end: int, image_hw: tuple[int, int]) -> int:
    """Fit epochs ``[done, end)`` of the phase ``[start, end)``, one ``fit`` call per resolution.

    Returns:
        Epochs done after the phase (fewer than ``end`` when early stopping ended it).

    Raises:
        TrainingDiverged: the loss became NaN.
    """
    for _, stop, resize_to in config.resolutions(start, end, image_hw):
        if done >= stop:
            continue
        model.fit(fit_data(resize_to), validation_data=val_ds, initial_epoch=done, epochs=stop,
                  verbose=0, callbacks=[saver, *extra])
        if saver.nan_at is not None:
            raise saver.diverged_error()
        done = saver.epochs_done
        if model.stop_training or done < stop:  # early stopping
            break
    return done


def _machine() -> dict:
    """What trained the run: img/s and minutes are only comparable on the same hardware.

    ``cpu`` (model name, or None), ``cpu_count`` (logical CPUs), ``gpus`` (device names TF sees).
    """
    import os

    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return {"cpu": cpu_info().model, "cpu_count": os.cpu_count(), "gpus": gpus}


def _finish(config, out, work, model, saver, placement, policy, train_split, fit_split, val_split,
            test_split, global_batch, peak_lr, augment: dict) -> RunDir:
    input_shape, num_classes = train_split.image_shape, len(train_split.class_names)
    model = _float32_copy(model, config, input_shape, num_classes)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    test_loss, test_top1 = model.evaluate(
        make_dataset(test_split.images, test_split.labels, batch_size=256, training=False), verbose=0)
    history = saver.history
    epochs_done = len(next(iter(history.values()), []))
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        run = RunDir(tmp)
        model.save(run.model)
        recorded = {**config.to_dict(), "augment_used": augment}  # what `auto` chose, and why
        write_json(run.config, recorded)
        _write_history(history, run.history)
        plot_curves(history, run.curves)
        if (work / "tensorboard").is_dir():
            shutil.copytree(work / "tensorboard", tmp / "tensorboard")
        seconds = max(saver.train_seconds, 1e-9)
        metrics = {"top1": float(test_top1), "loss": float(test_loss), "n_test": len(test_split),
                   "epochs": epochs_done, "stopped_early": epochs_done < config.epochs,
                   "train_seconds": round(seconds, 2),
                   "train_img_per_s": round(epochs_done * len(fit_split) / seconds, 1),
                   "precision_policy": policy, "loss_scaling": policy == "mixed_float16",
                   "strategy": placement.kind, "replicas": placement.replicas, "workers": placement.workers,
                   "global_batch": global_batch, "peak_lr": peak_lr, "machine": _machine()}
        write_json(run.metrics, metrics)
        dataset = {**config.data.to_dict(), "class_names": list(train_split.class_names),
                   "image_shape": list(input_shape), "n_train": len(fit_split),
                   "n_val": len(val_split) if val_split else 0, "n_test": len(test_split)}
        create_run_manifest(run, Path(out).name, dataset=dataset, model=model_record(
            run.model, run.model.name, architecture=config.model, params=model.count_params(),
            image_shape=input_shape, num_classes=num_classes),
            record=TrainStage(config=recorded, precision_policy=policy, metrics=metrics))
    _ckpt.remove(work)
    return RunDir(out)
