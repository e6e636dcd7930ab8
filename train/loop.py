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
from edgesmith.core.data import Split
from edgesmith.core.errors import ConfigError
from edgesmith.core.fsutil import atomic_path, write_json
from edgesmith.core.rundir import RunDir
from edgesmith.core.runlock import run_lock
from edgesmith.core.stages import TrainStage, create_run_manifest, model_record

from . import checkpoint as _ckpt
from .config import BACKBONE_LAYER, TrainConfig, resolve_augment
from . import precision as _precision
from edgesmith.tfshim import keras, tf
from .datasets import TrainData, hold_out_indices, prepare
from .input import dataset_throughput
from .models import build_model
from .plots import plot_curves
from .recipe import compile_model
from .strategy import make_strategy


def hold_out(train: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """The training split as ``(fit, validation)``: a seeded random ``fraction`` held out for
    validation (``seed + 1``), so a run and its tune trial hold out the same images; validation
    is None when the fraction rounds to no image."""
    fit, val = hold_out_indices(len(train), fraction, seed)
    if not len(val):
        return train, None
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
        raise ConfigError(f"run directory {out} already exists (choose another out or pass overwrite=True)",
                          field="train.out")
    if work.exists():
        if not overwrite:
            raise ConfigError(f"an interrupted run exists at {work}: pass resume=True to continue {out}, "
                              "or overwrite=True to start again", field="train.resume")
        shutil.rmtree(work)
    return None


def resume(out: str | Path) -> RunDir | None:
    """Continue the interrupted run at ``out`` from its last epoch checkpoint, with the config it
    started with (read from this worker's own ``RUN.partial``); see :func:`train`.

    Raises:
        ConfigError: nothing to resume at ``out`` (or the run is already complete).
    """
    config = TrainConfig.from_dict(_ckpt.load_config_dict(Path(out)))
    with run_lock(_ckpt.work_dir(Path(out)), what="train --resume", missing_ok=True):  # one resumer per RUN.partial
        return train(config, out, resume=True)


def train(config: TrainConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
          callbacks: Sequence["keras.callbacks.Callback"] = (), evaluate_test: bool = True) -> RunDir | None:
    """Train ``config.model`` on ``config.data`` and write a run directory at ``out``.

    The training split is decoded into memory, or streamed from its files when it is larger than
    the memory budget or ``config.stream`` says so (:mod:`.datasets`); validation comes from
    ``ROOT/val`` when the folder has one, else from a seeded hold-out (``config.val_split``).

    Side effects: checkpoints every epoch into ``RUN.partial/`` (removed at the end) and
    creates ``out`` (see :mod:`edgesmith.core.rundir` for the layout; plus ``tensorboard/``),
    built in a temporary sibling and renamed into place only when complete.

    Args:
        resume: continue the unfinished run at ``out`` from its last checkpoint (``config``
            should be the one it started with, see :func:`.checkpoint.load_config_dict`).
        callbacks: extra Keras callbacks for ``fit``.
        evaluate_test: score the model on the test split. ``tune`` trials pass False: a search never
            reads the test split; :func:`.test_eval.evaluate_test` scores the kept run afterwards.

    Returns:
        The :class:`RunDir` of the finished run (``metrics.json`` holds test top-1, per-class
        recall and precision and the confusion matrix; ``per_class.md`` and ``confusion.png`` show
        them), or None
        on a non-chief worker of a multi-worker run (only the chief writes the run).

    Raises:
        ConfigError: ``out`` exists and ``overwrite`` is false, an interrupted run is in the way,
            nothing to resume, or the config is invalid.
        DataError: the dataset cannot be loaded.
        TrainingDiverged: the loss became NaN (the last good checkpoint is kept for ``--resume``).
    """
    out = Path(out)
    if not resume and out.exists() and not overwrite:  # fail before any TensorFlow start-up
        raise ConfigError(f"run directory {out} already exists (choose another out or pass overwrite=True)",
                          field="train.out")
    placement = make_strategy(config.strategy)  # first TF call: collectives are set up at start-up
    work = _ckpt.work_dir(out, placement.task_index)
    state = _prepare_work(config, out, work, overwrite=overwrite, resume=resume, chief=placement.is_chief)
    say = _say if placement.is_chief and not config.quiet else None
    data = prepare(config, log=say)
    fit_split, val_split = data.fit, data.val
    input_shape, num_classes = fit_split.image_shape, len(fit_split.class_names)
    if config.low_res_epochs:
        config.low_res_hw(input_shape[:2])  # refuse a bad --low-res before any work
    augment = _augment_choice(config, input_shape, log=say is not None)
    weights = _class_weights(config, fit_split.labels, fit_split.class_names, say)
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "config.json", config.to_dict())

    keras.utils.set_random_seed(config.seed + (state or {}).get("epoch", 0))
    policy = _precision.resolve_policy(config.precision, gpus=len(tf.config.list_physical_devices("GPU")))
    global_batch = config.batch_size * placement.replicas
    peak_lr = config.learning_rate * placement.replicas
    steps = math.ceil(len(fit_split) / global_batch)

    def make_fit_data(resize_to):
        return fit_split.dataset(batch_size=global_batch, training=True, seed=config.seed,
                                 augment=augment["preset"], use_cutout=config.cutout, resize_to=resize_to)

    fit_data = functools.cache(make_fit_data)  # one dataset per resolution, shared by the phases (a backbone model has two)
    val_ds = val_split.dataset(batch_size=max(global_batch, 256), training=False) if val_split else None
    # timed on its own copy of the pipeline: the training dataset's shuffle order stays as in a quiet run
    input_ips = _input_rate(make_fit_data(None), say) if say is not None else None
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
                _start_phase(model, config, (start, end, frozen), peak_lr=peak_lr, steps=steps, policy=policy)
                _restore(model, saver, state, work, done, start)
            done = _fit_phase(model, config, saver, extra=extra, fit_data=fit_data, val_ds=val_ds, done=done,
                              start=start, end=end, image_hw=input_shape[:2], weights=weights, data=data)
            if model.stop_training or done < end:
                break
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if not placement.is_chief:
        _ckpt.remove(work)
        return None
    return _finish(config, out, work, model, saver=saver, placement=placement, policy=policy, data=data,
                   global_batch=global_batch, peak_lr=peak_lr, augment=augment,
                   extra={"class_weight": config.class_weight, "weights": weights, "input_img_per_s": input_ips,
                          "evaluate_test": evaluate_test})


def _say(line: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(line, highlight=False, markup=False)


def _class_weights(config: TrainConfig, labels: np.ndarray, class_names, say) -> dict[str, float] | None:
    """Class name -> loss weight for ``--class-weight auto`` (None for ``none``), said in the log."""
    if config.class_weight == "none":
        return None
    from edgesmith.core.perclass import class_weights

    w = class_weights(labels, len(class_names))
    out = {n: round(float(v), 4) for n, v in zip(class_names, w)}
    if say is not None:
        say("class weights (inverse frequency): " + ", ".join(f"{n} {v:.2f}" for n, v in out.items()))
    return out


def _input_rate(ds, say, seconds: float = 2.0) -> float:
    """The training input pipeline's images/s alone (no model), measured for ``seconds`` and logged."""
    ips = dataset_throughput(ds, seconds)
    say(f"input pipeline: {ips:,.0f} img/s (decode, shuffle, augment; no model)")
    return round(ips, 1)


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
    weights when the phase starts afresh (a backbone model's fine-tune phase has a new optimizer)."""
    saver.set_model(model)
    if state and done > start:
        saver.restore(state)
    elif state and done:
        tf.train.Checkpoint(model=model).read(str(work / "ckpt" / state["checkpoint"])).expect_partial()


def _start_phase(model, config: TrainConfig, phase: tuple[int, int, bool], *, peak_lr: float, steps: int,
                 policy: str) -> None:
    """Compile ``model`` for the phase ``(start, end, backbone_frozen)`` (:meth:`TrainConfig.phases`):
    a model with a pretrained backbone (:data:`.config.BACKBONE_LAYER`) gets it frozen or trainable,
    and a phase after the first starts at a tenth of ``peak_lr``."""
    start, end, frozen = phase
    if config.model in BACKBONE_LAYER:
        model.get_layer(BACKBONE_LAYER[config.model]).trainable = not frozen
    compile_model(model, peak_lr=peak_lr if start == 0 else peak_lr / 10, schedule_kind=config.schedule,
                  steps_per_epoch=steps, epochs=end - start, weight_decay=config.weight_decay,
                  label_smoothing=config.label_smoothing, optimizer=config.optimizer, policy=policy,
                  steps_per_execution=config.steps_per_execution)


def _fit_phase(model, config: TrainConfig, saver, *, extra: list, fit_data, val_ds, done: int, start: int,
               end: int, image_hw: tuple[int, int], weights: dict | None = None, data: TrainData | None = None) -> int:
    """Fit epochs ``[done, end)`` of the phase ``[start, end)``, one ``fit`` call per resolution.

    Returns:
        Epochs done after the phase (fewer than ``end`` when early stopping ended it).

    Raises:
        TrainingDiverged: the loss became NaN.
    """
    for _, stop, resize_to in config.resolutions(start, end, image_hw):
        if done >= stop:
            continue
        class_weight = {i: w for i, w in enumerate(weights.values())} if weights else None
        try:
            model.fit(fit_data(resize_to), validation_data=val_ds, initial_epoch=done, epochs=stop,
                      verbose=0, callbacks=[saver, *extra], class_weight=class_weight)
        except tf.errors.OpError:
            if data is not None:
                data.raise_strict_error()  # --strict-data: the file that stopped the stream, as a DataError
            raise
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


def _evaluate(model, test, batch_size: int = 256) -> tuple[float, float, np.ndarray]:
    """``(top-1, loss, confusion)`` of ``model`` on the ``test`` source, in one prediction pass.

    The loss is what Keras' ``evaluate`` reports: mean sparse cross-entropy plus the
    regularisation losses; ``confusion`` is ``(K, K) int64``, row = true class.
    """
    from edgesmith.core.perclass import confusion_matrix

    probs = model.predict(test.dataset(batch_size=batch_size, training=False), verbose=0)
    labels = test.kept_labels()
    p_true = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    reg = float(tf.add_n(model.losses)) if model.losses else 0.0
    preds = probs.argmax(1)
    return float((preds == labels).mean()), float(-np.log(p_true).mean() + reg), \
        confusion_matrix(labels, preds, probs.shape[1])


NOT_EVALUATED = {"top1": None, "loss": None, "n_test": 0, "balanced_accuracy": None, "per_class": None,
                 "confusion": None, "most_confused": None,
                 "test": "not evaluated: a tune trial never reads the test split (edgesmith tune scores the kept run)"}


def test_metrics(model, test, class_names: Sequence[str]) -> tuple[dict, dict]:
    """The test-split entries of ``metrics.json`` and the per-class summary, from one prediction pass.

    Returns:
        ``({"top1", "loss", "n_test", "balanced_accuracy", "per_class", "confusion", "most_confused"},
        summary)``; ``summary`` is :func:`edgesmith.core.perclass.per_class_summary`'s.
    """
    from edgesmith.core.perclass import per_class_summary

    top1, loss, confusion = _evaluate(model, test)
    summary = per_class_summary(confusion, class_names)
    return {"top1": float(top1), "loss": float(loss), "n_test": int(confusion.sum()),
            "balanced_accuracy": summary["balanced_accuracy"], "per_class": summary["per_class"],
            "confusion": summary["confusion"], "most_confused": summary["most_confused"]}, summary


def per_class_report(summary: dict, run: RunDir, config: TrainConfig) -> None:
    """``RUN/per_class.md`` (and ``RUN/confusion.png`` with matplotlib); the per-class table on the console."""
    from edgesmith.core.errors import BackendUnavailable
    from edgesmith.core.fsutil import write_text
    from edgesmith.core.perclass import confusion_markdown, per_class_markdown, plot_confusion

    names, cm = summary["class_names"], summary["confusion"]
    lines = ["# Per-class quality on the test split", "",
             f"Balanced accuracy (mean per-class recall): {summary['balanced_accuracy']:.2%}.", "",
             *per_class_markdown(summary), "", "## Confusion matrix (row: true class, column: predicted)", "",
             *confusion_markdown(cm, names), ""]
    write_text(run.root / "per_class.md", "\n".join(lines))
    try:
        plot_confusion(cm, names, run.root / "confusion.png", title="test split")
    except BackendUnavailable:
        pass  # per_class.md and metrics.json hold the numbers
    if not config.quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="per-class accuracy on the test split", title_justify="left")
        for col in ("class", "images", "accuracy (recall)", "precision"):
            table.add_column(col, justify="left" if col == "class" else "right")
        for r in summary["per_class"]:
            table.add_row(r["class"], str(r["support"]), "-" if r["recall"] is None else f"{r['recall']:.1%}",
                          "-" if r["precision"] is None else f"{r['precision']:.1%}")
        console = Console(stderr=True)
        console.print(table)
        worst = summary["most_confused"][:3]
        if worst:
            console.print("most confused: " + "; ".join(f"{w['true']} -> {w['predicted']} ({w['count']})"
                                                        for w in worst), highlight=False, markup=False)


def _finish(config: TrainConfig, out: Path, work: Path, model, *, saver, placement, policy: str, data: TrainData,
            global_batch: int, peak_lr: float, augment: dict, extra: dict) -> RunDir:
    """Evaluate the float32 copy of ``model`` on the test split and write the run directory at ``out``
    (atomically, under the run's lock): model, config, history, curves, metrics, per-class report,
    data report and manifest; then remove the work directory. ``extra`` holds ``class_weight``,
    ``weights`` and ``input_img_per_s`` for metrics.json."""
    from edgesmith.core.datareport import write_data_report

    fit_split, val_split, test_split = data.fit, data.val, data.test
    input_shape, num_classes = fit_split.image_shape, len(fit_split.class_names)
    model = _float32_copy(model, config, input_shape, num_classes)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    test, summary = (test_metrics(model, test_split, fit_split.class_names) if extra["evaluate_test"]
                     else (dict(NOT_EVALUATED), None))
    history = saver.history
    epochs_done = len(next(iter(history.values()), []))
    with run_lock(out, what="train", missing_ok=True), atomic_path(out) as tmp:  # a run it replaces: after its writer
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
        metrics = {**test, "epochs": epochs_done, "stopped_early": epochs_done < config.epochs,
                   "train_seconds": round(seconds, 2),
                   "train_img_per_s": round(epochs_done * len(fit_split) / seconds, 1),
                   "precision_policy": policy, "loss_scaling": policy == "mixed_float16",
                   "strategy": placement.kind, "replicas": placement.replicas, "workers": placement.workers,
                   "global_batch": global_batch, "peak_lr": peak_lr, "machine": _machine(),
                   "input": {"streamed": data.streamed, "why": data.why, "validation": data.val_from,
                             "pipeline_img_per_s": extra["input_img_per_s"],
                             "skipped_while_streaming": data.stream_failures()},
                   "class_weight": extra["class_weight"], "class_weights": extra["weights"]}
        write_json(run.metrics, metrics)
        if summary is not None:
            per_class_report(summary, run, config)
        write_data_report(config.data, tmp)  # used and skipped files, the split: RUN/data_report.md, split.json
        dataset = {**config.data.to_dict(), "class_names": list(fit_split.class_names),
                   "image_shape": list(input_shape), "n_train": len(fit_split),
                   "n_val": len(val_split) if val_split else 0, "n_test": test["n_test"]}
        create_run_manifest(run, Path(out).name, dataset=dataset, model=model_record(
            run.model, run.model.name, architecture=config.model, params=model.count_params(),
            image_shape=input_shape, num_classes=num_classes),
            record=TrainStage(config=recorded, precision_policy=policy, metrics=metrics))
    _ckpt.remove(work)
    return RunDir(out)
