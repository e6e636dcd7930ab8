"""``edgesmith train``: options shared with ``pipeline``, and the command itself."""
from __future__ import annotations

import datetime as _dt
import inspect
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgesmith.core.errors import ConfigError

from ._common import errors, out


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


DataOpt = Annotated[str, typer.Option("--data", "-d", help="'cifar10' (Keras download), 'synthetic', "
                                      "or a directory with `train/<class>/` and `test/<class>/` image folders.")]
ModelOpt = Annotated[str, typer.Option(help="Architecture: resnet8 (MLPerf Tiny), resnet20 / resnetN (N=6k+2), "
                                      "cnn (TF tutorial), lenet5 (gray 28x28), mobilenetv2, resnet50v2 (transfer).")]
EpochsOpt = Annotated[int, typer.Option(help="Training epochs.")]
BatchOpt = Annotated[int, typer.Option(help="Training batch size.")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate per replica (scaled by replicas; see "
                                                "--schedule) [default: 3e-3 for Adam, 0.1 x batch/128 for SGD].")]
PrecisionOpt = Annotated[Precision, typer.Option(help="auto: fp16 on CUDA, bf16 on AMX/AVX512-BF16 CPUs, else fp32.")]
LimitTrainOpt = Annotated[Optional[int], typer.Option(help="Use at most N training images (class-balanced).")]
LimitTestOpt = Annotated[Optional[int], typer.Option(help="Use at most N test images (class-balanced).")]
SeedOpt = Annotated[int, typer.Option(help="Random seed (weights, shuffling, subsets).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to create "
                                                "[default: `runs/<model>-<timestamp>`].")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace --out if it exists.")]


class Strategy(str, Enum):
    auto = "auto"
    none = "none"
    mirrored = "mirrored"
    multiworker = "multiworker"


class Schedule(str, Enum):
    cosine = "cosine"
    onecycle = "onecycle"
    constant = "constant"


class Optimizer(str, Enum):
    adam = "adam"
    sgd = "sgd"


class Augment(str, Enum):
    default = "default"
    rotate_shift = "rotate-shift"
    zoom_shift = "zoom-shift"
    none = "none"


class Preset(str, Enum):
    fast = "fast"


# Values a preset gives to options left at their defaults (explicit flags win).
# fast: float32, because on the AMX/AVX512-BF16 Xeon this was measured on, ResNet-8 trains
# at 1,000-1,700 img/s in float32 and 500-1,000 in mixed_bfloat16 (benchmarks/perf_training.py):
# its 16-64-channel layers are too small for AMX to pay for the casts. SGD with weight decay,
# because in 12 epochs on the CIFAR-10 JPEGs it reached 80.1% top-1 against Adam's 77.6%.
# Peak lr 0.3 per 128 images (3x SGD's default), because over 14 epochs on the AMD EPYC peak lr
# 0.1 / 0.2 / 0.3 / 0.4 reached 80.06 / 80.89 / 81.42 / 81.10% (seed 0; seed 1 at 0.3: 80.39%,
# so about +0.9 pt on average over 0.1). lr_per_128 scales
# with --batch-size, as SGD's default does; an explicit --lr wins.
# Progressive resizing, 12 epochs at 16 px then 8 at 32 px, batch 512: three runs reached 81.85%,
# 81.07% and 81.41% against 81.42% and 80.39% for 14 epochs at 32 px and batch 128, for about 11
# full-size epochs of compute instead of 14 (an epoch at 16 px costs a quarter). 10 at 24 px + 8 at 32 px:
# 81.51%; 14 + 6 at 24 px: 81.25%; 20 + 8 at 16 px: 81.09%; 15 epochs at 32 px, batch 512: 80.92%.
PRESETS = {"fast": {"model": "resnet8", "epochs": 20, "batch_size": 512, "lr": None, "schedule": Schedule.onecycle,
                    "label_smoothing": 0.1, "val_split": 0.0, "precision": Precision.fp32,
                    "optimizer": Optimizer.sgd, "weight_decay": 5e-3, "lr_per_128": 0.3,
                    "low_res_epochs": 12, "low_res": 16}}

# The train options a preset may set (keys of PRESETS' values, but lr_per_128).
PRESET_OPTIONS = ("model", "epochs", "batch_size", "lr", "schedule", "label_smoothing", "val_split", "precision",
                  "optimizer", "weight_decay", "low_res_epochs", "low_res")


def apply_preset(name: str, given: dict, explicit=frozenset()) -> dict:
    """``given`` (option -> value, keys :data:`PRESET_OPTIONS`) with preset ``name``'s values for
    the options not in ``explicit`` (the ones set on the command line, even to their default value);
    an unset ``lr`` becomes the preset's, scaled with the batch, and the preset's low-resolution
    epochs keep their share of a different ``--epochs``."""
    values = PRESETS[name]
    out = {**given, **{k: v for k, v in values.items() if k in given and k not in explicit}}
    if out["lr"] is None and "lr_per_128" in values:
        out["lr"] = values["lr_per_128"] * out["batch_size"] / 128
    if "low_res_epochs" not in explicit and values.get("low_res_epochs"):
        share = values["low_res_epochs"] / values["epochs"]
        out["low_res_epochs"] = min(out["epochs"] - 1, round(share * out["epochs"]))
    return out


def config_from_options(data, *, lr: float | None = None, **options):
    """The :class:`~edgesmith.train.TrainConfig` for ``train`` option values on ``data`` (a
    :class:`~edgesmith.core.data.DataSpec`): ``lr`` is ``learning_rate``, enum members become their
    values, and the other keys are TrainConfig fields (e.g. :func:`apply_preset`'s output).

    Raises:
        ConfigError: an invalid value (see TrainConfig).
    """
    from edgesmith.train import TrainConfig

    options = {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items()}
    return TrainConfig(data, learning_rate=lr, **options)


def run_train(data: str, model: str, epochs: int, batch_size: int, lr: float | None, precision: Precision,
              limit_train: int | None, limit_test: int | None, seed: int, out_dir: Path | None,
              overwrite: bool, **options):
    """Build the TrainConfig, train, print the result; returns the RunDir (None on a non-chief worker).

    ``options`` are further :class:`~edgesmith.train.TrainConfig` fields (strategy, schedule, ...).
    """
    from edgesmith.core.data import DataSpec
    from edgesmith.train import train

    config = config_from_options(DataSpec(data, limit_train, limit_test, seed), model=model, epochs=epochs,
                                 batch_size=batch_size, lr=lr, precision=precision, seed=seed, **options)
    out_dir = out_dir or Path("runs") / f"{model}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    return _report(train(config, out_dir, overwrite=overwrite), model)


def _report(run, model: str):
    if run is None:
        out.print("worker finished; the chief (worker 0) writes the run directory")
        return None
    m = json.loads(run.metrics.read_text())
    out.print(f"trained {model} -> {run.root}: test top-1 {m['top1']:.2%} ({m['epochs']} epochs, "
              f"{m['train_seconds']:.0f} s, {m['train_img_per_s']:.0f} img/s, {m['precision_policy']}, "
              f"{m['strategy']} x{m['replicas']})")
    return run


def resume_train(run_dir: Path):
    """Continue the unfinished run at ``run_dir`` from its last epoch checkpoint."""
    from edgesmith.train import TrainConfig, train
    from edgesmith.train.checkpoint import load_config_dict

    config = TrainConfig.from_dict(load_config_dict(run_dir))
    return _report(train(config, run_dir, resume=True), config.model)


OptData = Annotated[Optional[str], typer.Option("--data", "-d", help="'cifar10' (Keras download), 'synthetic', or a "
                                                "directory with `train/<class>/` and `test/<class>/` image folders.")]


def train_cmd(ctx: typer.Context, data: OptData = None, model: ModelOpt = "resnet8", epochs: EpochsOpt = 10,
              batch_size: BatchOpt = 128, lr: LrOpt = None, precision: PrecisionOpt = Precision.auto,
              limit_train: LimitTrainOpt = None, limit_test: LimitTestOpt = None, seed: SeedOpt = 0,
              out_dir: OutOpt = None, overwrite: OverwriteOpt = False,
              strategy: Annotated[Strategy, typer.Option(help="auto: multiworker when TF_CONFIG lists several workers, "
                                                         "mirrored with 2+ GPUs, else none.")] = Strategy.auto,
              schedule: Annotated[Schedule, typer.Option(help="Learning-rate schedule (warm-up + cosine decay, "
                                                         "one-cycle, or constant).")] = Schedule.onecycle,
              label_smoothing: Annotated[float, typer.Option(help="Label smoothing (0 = off).")] = 0.1,
              optimizer: Annotated[Optimizer, typer.Option(help="adam, or sgd (Nesterov momentum 0.9, the "
                                                           "published CIFAR ResNet recipe).")] = Optimizer.adam,
              weight_decay: Annotated[float, typer.Option(help="Decoupled weight decay, shrinking weights by "
                                                          "lr x this per step (AdamW with adam; 0 = off).")] = 0.0,
              patience: Annotated[Optional[int], typer.Option(help="Early stopping: epochs without a better "
                                                              "validation loss.")] = None,
              val_split: Annotated[float, typer.Option(help="Fraction of train held out for validation.")] = 0.05,
              augment: Annotated[Augment, typer.Option(help="Augmentation preset.")] = Augment.default,
              cutout: Annotated[bool, typer.Option(help="Add Cutout (one half-size grey square per image).")] = False,
              width: Annotated[float, typer.Option(help="mobilenetv2 width multiplier.")] = 1.0,
              weights: Annotated[str, typer.Option(help="resnet50v2 backbone: imagenet, none, or a .h5 weights "
                                                   "file.")] = "none",
              backbone_size: Annotated[int, typer.Option(help="resnet50v2: input side after upsampling inside "
                                                         "the model.")] = 224,
              freeze_epochs: Annotated[Optional[int], typer.Option(help="resnet50v2: epochs with the backbone "
                                                                   "frozen before fine-tuning [default: 1/3].")] = None,
              tensorboard: Annotated[bool, typer.Option(help="Write TensorBoard logs to RUN/tensorboard.")] = True,
              steps_per_execution: Annotated[int, typer.Option(help="Training steps per tf.function call: fewer "
                                                               "Python round trips; progress and the NaN check "
                                                               "see every k-th step.")] = 1,
              low_res_epochs: Annotated[int, typer.Option(help="Progressive resizing: train the first K epochs on "
                                                          "images scaled down to --low-res, then full size "
                                                          "(resnet8, resnetN, mobilenetv2).")] = 0,
              low_res: Annotated[Optional[int], typer.Option(help="Longer side of the --low-res-epochs images, px "
                                                             "[default: 3/4 of the images'].")] = None,
              preset: Annotated[Optional[Preset], typer.Option(help="fast: ResNet-8, 20 epochs (the first 12 at 16 px), "
                                                               "batch 512, float32, SGD (peak lr 0.3 per 128 images) "
                                                               "+ weight decay 5e-3, one-cycle, label smoothing 0.1, "
                                                               "no validation hold-out.")] = None,
              resume: Annotated[Optional[Path], typer.Option(help="Continue the interrupted run RUN from its last "
                                                             "epoch checkpoint (other options are ignored).",
                                                             metavar="RUN")] = None):
    """Train a model and write a run directory (model.keras, history, curves, metrics, TensorBoard, manifest)."""
    given = {k: v for k, v in locals().items() if k in PRESET_OPTIONS}  # first: only the parameters so far
    with errors():
        if resume is not None:
            resume_train(resume)
            return
        if data is None:
            raise ConfigError("--data is required (or --resume RUN)")
        if preset is not None:
            # the options set on the command line, even to their default value (click's ParameterSource)
            explicit = {k for k in given if ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP")}
            given = apply_preset(preset.value, given, explicit)
        run_train(data, limit_train=limit_train, limit_test=limit_test, seed=seed, out_dir=out_dir,
                  overwrite=overwrite, strategy=strategy, patience=patience, augment=augment, cutout=cutout,
                  width=width, weights=weights, backbone_size=backbone_size, freeze_epochs=freeze_epochs,
                  tensorboard=tensorboard, steps_per_execution=steps_per_execution, **given)


# train_cmd's defaults for the options a preset may set (e.g. to resolve a preset outside the CLI).
TRAIN_DEFAULTS = {k: inspect.signature(train_cmd).parameters[k].default for k in PRESET_OPTIONS}
