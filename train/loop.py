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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np

from edgesmith.core.cpuinfo import cpu_info
from edgesmith.core.data import DataSpec, Split, load_dataset
from edgesmith.core.errors import ConfigError
from edgesmith.core.fsutil import atomic_path, write_json
from edgesmith.core.rundir import RunDir, file_record, new_manifest, now_iso, save_manifest

from . import checkpoint as _ckpt
from . import precision as _precision
from ._keras import keras, tf
from .input import AUGMENTS, make_dataset
from .models import any_input_size, build_model, is_known, model_names
from .plots import plot_curves
from .recipe import OPTIMIZERS, SCHEDULES, compile_model, default_learning_rate
from .strategy import STRATEGIES, make_strategy


@dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, and how.

    Attributes:
        data: the dataset to train on (see :class:`~edgesmith.core.data.DataSpec`).
        model: architecture name (see :mod:`.models`: resnet8, resnet20, resnetN, cnn, lenet5,
            mobilenetv2, resnet50v2).
        epochs: passes over the training split (including any frozen-backbone epochs).
        batch_size: images per step per replica (the global batch is ``batch_size * replicas``).
        learning_rate: peak learning rate for one replica; scaled linearly with the replicas.
            None picks the optimizer's default (3e-3 for Adam, 0.1 per 128 images of batch for SGD).
        val_split: fraction of the training split held out for validation curves.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see :mod:`.precision`).
        seed: seeds weights, shuffling and the validation hold-out.
        strategy: ``auto``, ``none``, ``mirrored`` or ``multiworker`` (see :mod:`.strategy`).
        schedule: ``cosine``, ``onecycle`` (default) or ``constant`` (see :mod:`.recipe`).
        label_smoothing: in [0, 0.5); 0 turns it off. The default one-cycle schedule with 0.1
            label smoothing gave ResNet-8 76.4% top-1 in 10 epochs on the shared CIFAR-10
            JPEGs, against 74.2% for warm-up + cosine without smoothing.
        optimizer: ``adam`` (default) or ``sgd`` (Nesterov momentum 0.9; see :mod:`.recipe`).
        weight_decay: decoupled weight decay (AdamW for ``adam``); 0 turns it off.
        patience: stop after this many epochs without a better validation loss (training loss
            without a validation split) and keep the best weights; None trains every epoch.
        augment: ``default``, ``rotate-shift``, ``zoom-shift`` or ``none`` (see :mod:`.input`).
        cutout: add Cutout to the augmentation.
        width: MobileNetV2 width multiplier.
        weights: resnet50v2 backbone initialisation: ``imagenet``, a ``.h5`` path or ``none``.
        backbone_size: resnet50v2: the side the inputs are upsampled to inside the model (224 is the
            ImageNet resolution; smaller is much faster on a CPU).
        freeze_epochs: resnet50v2 epochs with the backbone frozen (head only, peak lr) before
            fine-tuning everything at lr/10; None picks a third of the epochs.
        tensorboard: write TensorBoard logs to ``RUN/tensorboard``.
        steps_per_execution: training steps per ``tf.function`` call (Keras ``compile``): fewer
            Python round trips per epoch, at the price of per-batch callbacks (progress, the NaN
            check) seeing only every k-th step.
        low_res_epochs: progressive resizing: train the first this many epochs on images scaled
            down to ``low_res`` (longer side, pixels), then the rest at full size, under one
            learning-rate schedule; 0 turns it off. Fully convolutional models only (see
            :func:`.models.any_input_size`); the exported model takes full-size images, and
            validation always runs at full size (``--patience`` counts afresh at the switch). Smaller
            images cost fewer FLOPs, so more epochs fit in a time budget (Howard & Gugger, 2020,
            fastai's "progressive resizing"; Touvron et al., 2019, "Fixing the train-test
            resolution discrepancy", on finishing at the test resolution).
        low_res: the longer side of the low-resolution epochs, px; None is 3/4 of the images'.
    """

    data: DataSpec
    model: str = "resnet8"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float | None = None
    val_split: float = 0.05
    precision: str = "auto"
    seed: int = 0
    strategy: str = "auto"
    schedule: str = "onecycle"
    label_smoothing: float = 0.1
    optimizer: str = "adam"
    weight_decay: float = 0.0
    patience: int | None = None
    augment: str = "default"
    cutout: bool = False
    width: float = 1.0
    weights: str = "none"
    backbone_size: int = 224
    freeze_epochs: int | None = None
    tensorboard: bool = True
    steps_per_execution: int = 1
    low_res_epochs: int = 0
    low_res: int | None = None
    quiet: bool = field(default=False, compare=False)

    def __post_init__(self):
        def choice(name, value, options):
            if value not in options:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(options)}")

        if not is_known(self.model):
            raise ConfigError(f"unknown model {self.model!r}; choose one of {model_names()}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.learning_rate is None:  # recorded resolved, so the manifest says what was used
            object.__setattr__(self, "learning_rate", default_learning_rate(self.optimizer, self.batch_size))
        if not 0 < self.learning_rate < 10:
            raise ConfigError(f"--learning-rate must be in (0, 10), got {self.learning_rate}")
        if not 0 <= self.val_split < 0.5:
            raise ConfigError(f"--val-split must be in [0, 0.5), got {self.val_split}")
        choice("precision", self.precision, ("auto", *_precision.PRECISIONS))
        choice("strategy", self.strategy, STRATEGIES)
        choice("schedule", self.schedule, SCHEDULES)
        choice("augmentation", self.augment, AUGMENTS)
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"--weight-decay must be in [0, 1), got {self.weight_decay}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"--patience must be >= 1, got {self.patience}")
        if not 0 < self.width <= 4:
            raise ConfigError(f"--width must be in (0, 4], got {self.width}")
        if not 32 <= self.backbone_size <= 1024:
            raise ConfigError(f"--backbone-size must be in [32, 1024], got {self.backbone_size}")
        if not 1 <= self.steps_per_execution <= 10_000:
            raise ConfigError(f"--steps-per-execution must be in [1, 10000], got {self.steps_per_execution}")
        if self.freeze_epochs is not None and not 0 <= self.freeze_epochs <= self.epochs:
            raise ConfigError(f"--freeze-epochs must be in [0, --epochs], got {self.freeze_epochs}")
        if not 0 <= self.low_res_epochs < self.epochs:
            raise ConfigError(f"--low-res-epochs must be in [0, --epochs), got {self.low_res_epochs}")
        if self.low_res_epochs and not any_input_size(self.model):
            raise ConfigError(f"--low-res-epochs needs a fully convolutional model (resnet8, resnetN, "
                              f"mobilenetv2), not {self.model}")
        if self.low_res is not None and self.low_res < 8:
            raise ConfigError(f"--low-res must be >= 8 pixels, got {self.low_res}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data"] = self.data.to_dict()
        d.pop("quiet")
        return d

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "TrainConfig":
        """Rebuild a config from :meth:`to_dict` output (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names and k != "data"}
        return cls(DataSpec.from_dict(d["data"]), **{**kw, **overrides})

    def model_options(self) -> dict:
        return {"width": self.width, "weights": self.weights, "size": self.backbone_size}

    def phases(self) -> list[tuple[int, int, bool]]:
        """``(first_epoch, end_epoch, backbone_frozen)`` per phase (two for resnet50v2)."""
        if self.model != "resnet50v2":
            return [(0, self.epochs, False)]
        k = self.epochs // 3 if self.freeze_epochs is None else self.freeze_epochs
        return [p for p in ((0, k, True), (k, self.epochs, False)) if p[1] > p[0]]

    def resolutions(self, start: int, end: int, image_hw: tuple[int, int]) -> list[tuple[int, int, tuple | None]]:
        """``(first_epoch, end_epoch, (h, w) or None)`` per ``fit`` call within the phase
        ``[start, end)``: the low-resolution epochs first, then full size (None).

        Raises:
            ConfigError: ``low_res`` is not smaller than the images' longer side.
        """
        k = self.low_res_epochs
        if not k:
            return [(start, end, None)]
        spans = [(start, min(end, k), self.low_res_hw(image_hw)), (max(start, k), end, None)]
        return [s for s in spans if s[1] > s[0]]

    def low_res_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the low-resolution epochs for ``image_hw`` images, aspect kept.

        Raises:
            ConfigError: ``low_res`` is not smaller than the images' longer side.
        """
        side = max(image_hw)
        low = self.low_res if self.low_res is not None else round(side * 3 / 4)
        if not 8 <= low < side:
            raise ConfigError(f"--low-res must be in [8, {side}) for {image_hw[0]}x{image_hw[1]} images, got {low}")
        return tuple(max(1, round(d * low / side)) for d in image_hw)


def _hold_out(train: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
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
    fit_split, val_split = _hold_out(train_split, config.val_split, config.seed)
    input_shape, num_classes = train_split.image_shape, len(train_split.class_names)
    if config.low_res_epochs:
        config.low_res_hw(input_shape[:2])  # refuse a bad --low-res before any work
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
                            seed=config.seed, augment=config.augment, use_cutout=config.cutout, resize_to=resize_to)

    val_ds = (make_dataset(val_split.images, val_split.labels, batch_size=max(global_batch, 256), training=False)
              if val_split else None)
    saver = _ckpt.EpochCheckpoint(work, state)
    extra = list(callbacks)
    if config.patience:
        extra.append(keras.callbacks.EarlyStopping(monitor="val_loss" if val_split else "loss",
                                                   patience=config.patience, restore_best_weights=True))
    if config.tensorboard and placement.is_chief and _has_tensorboard():
        extra.append(keras.callbacks.TensorBoard(log_dir=str(work / "tensorboard"), profile_batch=0))
    if not config.quiet and placement.is_chief:
        from .progress import RichProgress

        extra.append(RichProgress(config.epochs, steps))
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
                saver.set_model(model)
                if state and done > start:
                    saver.restore(state)  # weights + optimizer, mid-phase
                elif state and done:
                    tf.train.Checkpoint(model=model).read(
                        str(work / "ckpt" / state["checkpoint"])).expect_partial()  # weights only
            for _, stop, resize_to in config.resolutions(start, end, input_shape[:2]):
                if done >= stop:
                    continue
                model.fit(fit_data(resize_to), validation_data=val_ds, initial_epoch=done, epochs=stop,
                          verbose=0, callbacks=[saver, *extra])
                if saver.nan_at is not None:
                    raise saver.diverged_error()
                done = saver.epochs_done
                if model.stop_training or done < stop:  # early stopping
                    break
            if model.stop_training or done < end:
                break
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if not placement.is_chief:
        _ckpt.remove(work)
        return None
    return _finish(config, out, work, model, saver, placement, policy, train_split, fit_split, val_split,
                   test_split, global_batch, peak_lr)


def _machine() -> dict:
    """What trained the run: img/s and minutes are only comparable on the same hardware.

    ``cpu`` (model name, or None), ``cpu_count`` (logical CPUs), ``gpus`` (device names TF sees).
    """
    import os

    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return {"cpu": cpu_info().model, "cpu_count": os.cpu_count(), "gpus": gpus}


def _finish(config, out, work, model, saver, placement, policy, train_split, fit_split, val_split,
            test_split, global_batch, peak_lr) -> RunDir:
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
        write_json(run.config, config.to_dict())
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
        manifest = new_manifest(RunDir(out), {
            **config.data.to_dict(), "class_names": list(train_split.class_names),
            "image_shape": list(input_shape), "n_train": len(fit_split),
            "n_val": len(val_split) if val_split else 0, "n_test": len(test_split)})
        manifest["model"] = file_record(run.model, run.model.name, format="keras", precision="fp32",
                                        architecture=config.model, params=int(model.count_params()),
                                        input={"shape": [None, *input_shape], "dtype": "float32",
                                               "layout": "NHWC", "value_range": [0, 255]},
                                        output={"shape": [None, num_classes], "dtype": "float32",
                                                "kind": "probabilities"})
        manifest["stages"]["train"] = {"finished": now_iso(), "config": config.to_dict(),
                                       "precision_policy": policy, "metrics": metrics}
        save_manifest(run, manifest)
    _ckpt.remove(work)
    return RunDir(out)
