"""The training loop: a TrainConfig in, a complete run directory out."""
from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgesmith.core.data import DataSpec, Split, load_dataset
from edgesmith.core.errors import ConfigError
from edgesmith.core.fsutil import atomic_path, write_json
from edgesmith.core.rundir import RunDir, file_record, new_manifest, now_iso, save_manifest

from . import precision as _precision
from ._keras import keras, tf
from .input import make_dataset
from .models import MODELS, build_model
from .plots import plot_curves
from .progress import RichProgress


@dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, and how.

    Attributes:
        data: the dataset to train on (see :class:`~edgesmith.core.data.DataSpec`).
        model: architecture name (``resnet8``, ``cnn``).
        epochs: passes over the training split.
        batch_size: images per step.
        learning_rate: peak Adam learning rate, reached after a 1-epoch linear warm-up and
            followed by cosine decay to zero.
        val_split: fraction of the training split held out for validation curves.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see :mod:`.precision`).
        seed: seeds weights, shuffling and the validation hold-out.
    """

    data: DataSpec
    model: str = "resnet8"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 3e-3
    val_split: float = 0.05
    precision: str = "auto"
    seed: int = 0
    quiet: bool = field(default=False, compare=False)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not 0 < self.learning_rate < 10:
            raise ConfigError(f"--learning-rate must be in (0, 10), got {self.learning_rate}")
        if not 0 <= self.val_split < 0.5:
            raise ConfigError(f"--val-split must be in [0, 0.5), got {self.val_split}")
        if self.precision != "auto" and self.precision not in _precision.PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose auto, {', '.join(_precision.PRECISIONS)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data"] = self.data.to_dict()
        d.pop("quiet")
        return d


def _hold_out(train: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    n_val = int(round(len(train) * fraction))
    if n_val == 0:
        return train, None
    idx = np.random.default_rng(seed + 1).permutation(len(train))
    val, fit = idx[:n_val], idx[n_val:]
    return (Split(train.images[fit], train.labels[fit], train.class_names),
            Split(train.images[val], train.labels[val], train.class_names))


def _compile(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    total = config.epochs * steps_per_epoch
    warmup = min(steps_per_epoch, total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10, decay_steps=max(total - warmup, 1),
        warmup_target=config.learning_rate, warmup_steps=warmup)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])


def _float32_copy(model: keras.Model, config: TrainConfig, input_shape, num_classes) -> keras.Model:
    """Rebuild the architecture under float32 and copy the weights (bf16 graphs do not convert to TFLite)."""
    keras.mixed_precision.set_global_policy("float32")
    clone = build_model(config.model, input_shape, num_classes)
    clone.set_weights(model.get_weights())
    return clone


def _write_history(history: dict[str, list[float]], path: Path) -> None:
    keys = list(history)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *keys])
        for i in range(len(history[keys[0]]) if keys else 0):
            w.writerow([i + 1, *(f"{history[k][i]:.6g}" for k in keys)])


def train(config: TrainConfig, out: str | Path, *, overwrite: bool = False) -> RunDir:
    """Train ``config.model`` on ``config.data`` and write a run directory at ``out``.

    Side effects: creates ``out`` (see :mod:`edgesmith.core.rundir` for the layout),
    built in a temporary sibling and renamed into place only when complete.

    Returns:
        The :class:`RunDir` of the finished run; ``metrics.json`` holds test top-1.

    Raises:
        ConfigError: ``out`` exists and ``overwrite`` is false, or the config is invalid.
        DataError: the dataset cannot be loaded.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"run directory {out} already exists (choose another --out or pass --overwrite)")
    train_split, test_split = load_dataset(config.data)
    fit_split, val_split = _hold_out(train_split, config.val_split, config.seed)
    input_shape, num_classes = train_split.image_shape, len(train_split.class_names)

    keras.utils.set_random_seed(config.seed)
    policy = _precision.resolve_policy(config.precision, gpus=len(tf.config.list_physical_devices("GPU")))
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model(config.model, input_shape, num_classes)
        steps = math.ceil(len(fit_split) / config.batch_size)
        _compile(model, config, steps)
        fit_ds = make_dataset(fit_split.images, fit_split.labels, batch_size=config.batch_size,
                              training=True, seed=config.seed)
        val_ds = (make_dataset(val_split.images, val_split.labels, batch_size=256, training=False)
                  if val_split else None)
        callbacks = [] if config.quiet else [RichProgress(config.epochs, steps)]
        started = time.perf_counter()
        hist = model.fit(fit_ds, validation_data=val_ds, epochs=config.epochs, verbose=0,
                         callbacks=callbacks)
        train_seconds = time.perf_counter() - started
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model = _float32_copy(model, config, input_shape, num_classes)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    test_loss, test_top1 = model.evaluate(
        make_dataset(test_split.images, test_split.labels, batch_size=256, training=False), verbose=0)

    history = {k: [float(v) for v in vals] for k, vals in hist.history.items() if k != "lr"}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        run = RunDir(tmp)
        model.save(run.model)
        write_json(run.config, config.to_dict())
        _write_history(history, run.history)
        plot_curves(history, run.curves)
        metrics = {"top1": float(test_top1), "loss": float(test_loss), "n_test": len(test_split),
                   "train_seconds": round(train_seconds, 2),
                   "train_img_per_s": round(config.epochs * len(fit_split) / train_seconds, 1),
                   "precision_policy": policy}
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
    return RunDir(out)
