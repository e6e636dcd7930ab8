"""``edgesmith train``: options shared with ``pipeline``, and the command itself.

Choices and defaults come from :mod:`edgesmith.train.config` (TF-free), so the command cannot
drift from the library: the CLI only maps option values onto a TrainConfig.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgesmith.core.errors import ConfigError
from edgesmith.core.images import RESIZE_MODES
from edgesmith.train import config as tc

from ._common import choice_enum, err, errors, out

Precision = choice_enum("Precision", tc.PRECISION_CHOICES)
Strategy = choice_enum("Strategy", tc.STRATEGIES)
Schedule = choice_enum("Schedule", tc.SCHEDULES)
Optimizer = choice_enum("Optimizer", tc.OPTIMIZERS)
Augment = choice_enum("Augment", tc.AUGMENTS)
Preset = choice_enum("Preset", tc.PRESETS)
Resize = choice_enum("Resize", RESIZE_MODES)


def _preset_help() -> str:
    parts = []
    for name, values in tc.PRESETS.items():
        shown = ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)
        parts.append(f"{name}: {shown}")
    return ("Fill the options not given on the command line from a named recipe (" + "; ".join(parts) +
            "; lr_per_128 scales with --batch-size).")


_DATA_HELP = ("'cifar10', 'mnist' or 'fashion_mnist' (Keras downloads, read without TensorFlow), 'synthetic', or a "
              "directory of class folders: `train/<class>/` + `test/<class>/` (+ `val/<class>/`), or `<class>/` alone "
              "(split here, see --test-split); read recursively, unreadable files skipped and listed in "
              "RUN/data_report.md (all-gray images load as 1 channel). See docs/data.md.")
DataOpt = Annotated[str, typer.Option("--data", "-d", help=_DATA_HELP)]
ModelOpt = Annotated[str, typer.Option(help=f"Architecture: {tc.model_names()} (resnet8: MLPerf Tiny; cnn: TF "
                                       "tutorial; lenet5: gray 28x28, e.g. --data mnist, trains with the defaults "
                                       "(Adam, one-cycle, --augment auto = small shifts, no flip); resnet50v2: "
                                       "ImageNet transfer, see --weights).")]
EpochsOpt = Annotated[int, typer.Option(help="Training epochs.")]
BatchOpt = Annotated[int, typer.Option(help="Training batch size.")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate per replica (scaled by replicas; see "
                                                "--schedule) [default: 3e-3 for Adam (lenet5: 1e-2), 0.1 x batch/128 "
                                                "for SGD].")]
PrecisionOpt = Annotated[Precision, typer.Option(help="auto: fp16 on CUDA, bf16 on AMX/AVX512-BF16 CPUs, else fp32.")]
LimitTrainOpt = Annotated[Optional[int], typer.Option(help="Use at most N training images (class-balanced).")]
LimitTestOpt = Annotated[Optional[int], typer.Option(help="Use at most N test images (class-balanced).")]
SeedOpt = Annotated[int, typer.Option(help="Random seed (weights, shuffling, subsets).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to create "
                                                "[default: `runs/<model>-<timestamp>`].")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace --out if it exists.")]
OptData = Annotated[Optional[str], typer.Option("--data", "-d", help=_DATA_HELP)]
ImageSizeOpt = Annotated[Optional[str], typer.Option(help="Decode every image to H or HxW px (e.g. 64, 96x128) "
                                                     "by --resize [default: the images' own size when they all "
                                                     "agree, else the model's native size, 32x32 (lenet5: "
                                                     "28x28)].", metavar="H[xW]")]
ResizeOpt = Annotated[Resize, typer.Option(help="How an image of another aspect ratio reaches --image-size: squash "
                                           "(whole image, aspect not kept), crop (centre crop to the aspect, short "
                                           "side fills), pad (letterbox in black). Recorded in the model files, so "
                                           "`predict` does the same.")]
TestSplitOpt = Annotated[Optional[float], typer.Option(help="For a folder of `<class>/` folders without train/: "
                                                       "share of each class held out as test (stratified, seeded "
                                                       "by --seed; written to RUN/split.json) [default: 0.2].")]
ClassWeight = choice_enum("ClassWeight", tc.CLASS_WEIGHTS)
ClassWeightOpt = Annotated[ClassWeight, typer.Option(help="auto: weight each image's loss by the inverse frequency "
                                                     "of its class (for imbalanced folders; the weights are printed "
                                                     "and kept in metrics.json); none: every image alike.")]
StreamOpt = Annotated[Optional[bool], typer.Option("--stream/--no-stream", help="Read a folder's images from the "
                                                   "files while training instead of decoding them into memory "
                                                   "[default: stream when the decoded training split would take "
                                                   "over a quarter of the available memory].")]
StrictDataOpt = Annotated[bool, typer.Option("--strict-data", help="Refuse the dataset on any unreadable image "
                                             "instead of skipping it.")]

# CLI option name -> TrainConfig field, where they differ
_FIELD = {"lr": "learning_rate"}


def data_spec(data: str, *, limit_train: int | None = None, limit_test: int | None = None, seed: int = 0,
              image_size: str | None = None, resize="squash", test_split: float | None = None,
              strict_data: bool = False, native_size: tuple[int, int] | None = None,
              native_from: str = "the model") -> "DataSpec":
    """The :class:`DataSpec` of the data options (``image_size`` as ``"H"`` or ``"HxW"``, ``resize``,
    ``test_split``, ``strict_data``), split seeded by ``seed``; shared by train, pipeline, tune and import.

    A folder of images of mixed sizes without ``image_size`` is decoded to ``native_size`` (said on
    stderr, naming ``native_from``); ``native_size`` None leaves it unset.

    Raises:
        DataError: a bad data option.
    """
    from edgesmith.core.data import NAMED_SOURCES, DataSpec, common_size, parse_image_size

    spec = DataSpec(data, limit_train, limit_test, seed, image_size=parse_image_size(image_size) if image_size else None,
                    resize=getattr(resize, "value", resize), test_split=test_split, split_seed=seed,
                    strict=strict_data)
    if (native_size is not None and spec.image_size is None and spec.source not in NAMED_SOURCES
            and common_size(spec) is None):
        spec = dataclasses.replace(spec, image_size=tuple(native_size))
        err.print(f"images in {spec.source} differ in size: decoding them to {spec.image_size[0]}x"
                  f"{spec.image_size[1]}, {native_from}'s native size, by --resize {spec.resize} (--image-size to "
                  "choose)", highlight=False)
    return spec


def build_config(data: str, *, limit_train: int | None = None, limit_test: int | None = None, seed: int = 0,
                 preset: str | None = None, explicit=frozenset(), image_size: str | None = None,
                 resize="squash", test_split: float | None = None, strict_data: bool = False,
                 **options) -> "tc.TrainConfig":
    """The TrainConfig for CLI option values: enum members become their values, ``lr`` is
    ``learning_rate``, and with ``preset`` its values fill the options not in ``explicit``;
    the data options go to the :class:`DataSpec` (:func:`data_spec`), whose split seed is ``seed``.
    A folder of images of mixed sizes without ``image_size`` is decoded to the model's native size
    (said on stderr).

    Raises:
        ConfigError: unknown preset or an invalid value (see TrainConfig).
        DataError: a bad data option.
    """
    fields = {_FIELD.get(k, k): getattr(v, "value", v) for k, v in options.items()}
    if preset is not None:
        given = {k: fields[k] for k in tc.PRESET_OPTIONS if k in fields}
        fields.update(tc.apply_preset(preset, given, {_FIELD.get(k, k) for k in explicit}))
    model = fields.get("model") or tc.default("model")
    spec = data_spec(data, limit_train=limit_train, limit_test=limit_test, seed=seed, image_size=image_size,
                     resize=resize, test_split=test_split, strict_data=strict_data,
                     native_size=tc.native_size(model), native_from=model)
    return tc.TrainConfig(spec, seed=seed, **fields)


def run_train(config: "tc.TrainConfig", out_dir: Path | None, overwrite: bool = False):
    """Train ``config`` into ``out_dir`` (default ``runs/<model>-<timestamp>``) and print the result.

    Returns:
        The RunDir, or None on a non-chief worker.
    """
    from edgesmith.train import train

    out_dir = out_dir or Path("runs") / f"{config.model}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    return print_trained(train(config, out_dir, overwrite=overwrite))


def print_trained(run):
    """What a training made: the files it read (``RUN/data_report.json``, which train() writes) and
    the run's test top-1; on a non-chief worker (``run`` None) that it wrote nothing. Returns ``run``."""
    if run is None:
        out.print("worker finished; the chief (worker 0) writes the run directory")
        return None
    data_report = run.root / "data_report.json"  # what was used and skipped, and the split
    report = json.loads(data_report.read_text()) if data_report.is_file() else {}
    if report.get("splits"):
        out.print(f"data: {report['summary']} files (see {run.root / 'data_report.md'})")
    m = json.loads(run.metrics.read_text())
    model = json.loads(run.manifest.read_text())["model"]["architecture"]
    epochs = f"{m['epochs']} epoch" + "s" * (m["epochs"] != 1)
    out.print(f"trained {model} -> {run.root}: test top-1 {m['top1']:.2%} ({epochs}, "
              f"{m['train_seconds']:.0f} s, {m['train_img_per_s']:.0f} img/s, {m['precision_policy']}, "
              f"{m['strategy']} x{m['replicas']})")
    return run


def train_cmd(ctx: typer.Context, data: OptData = None, model: ModelOpt = tc.default("model"),
              epochs: EpochsOpt = tc.default("epochs"), batch_size: BatchOpt = tc.default("batch_size"),
              lr: LrOpt = None, precision: PrecisionOpt = Precision(tc.default("precision")),
              limit_train: LimitTrainOpt = None, limit_test: LimitTestOpt = None, seed: SeedOpt = tc.default("seed"),
              image_size: ImageSizeOpt = None, resize: ResizeOpt = Resize("squash"), test_split: TestSplitOpt = None,
              strict_data: StrictDataOpt = False,
              out_dir: OutOpt = None, overwrite: OverwriteOpt = False,
              strategy: Annotated[Strategy, typer.Option(help="auto: multiworker when TF_CONFIG lists several workers, "
                                                         "mirrored with 2+ GPUs, else none.")]
              = Strategy(tc.default("strategy")),
              schedule: Annotated[Schedule, typer.Option(help="Learning-rate schedule (warm-up + cosine decay, "
                                                         "one-cycle, or constant).")]
              = Schedule(tc.default("schedule")),
              label_smoothing: Annotated[float, typer.Option(help="Label smoothing (0 = off).")]
              = tc.default("label_smoothing"),
              optimizer: Annotated[Optimizer, typer.Option(help="adam, or sgd (Nesterov momentum 0.9, the "
                                                           "published CIFAR ResNet recipe).")]
              = Optimizer(tc.default("optimizer")),
              weight_decay: Annotated[float, typer.Option(help="Decoupled weight decay, shrinking weights by "
                                                          "lr x this per step (AdamW with adam; 0 = off).")]
              = tc.default("weight_decay"),
              patience: Annotated[Optional[int], typer.Option(help="Early stopping: epochs without a better "
                                                              "validation loss.")] = tc.default("patience"),
              val_split: Annotated[float, typer.Option(help="Fraction of train held out for validation.")]
              = tc.default("val_split"),
              augment: Annotated[Augment, typer.Option(help="Augmentation preset. auto: chosen from the data "
                                                         "and printed: gray images (digits, characters; 1 channel, or "
                                                         "--data mnist/fashion_mnist) get 'shift' (up to 8% shifts, no "
                                                         "flip), colour images 'default' (flip + pad-4 crop). shift, "
                                                         "rotate-shift, zoom-shift, none: see docs/training.md.")] = Augment(tc.default("augment")),
              cutout: Annotated[bool, typer.Option(help="Add Cutout (one half-size grey square per image).")]
              = tc.default("cutout"),
              width: Annotated[float, typer.Option(help="mobilenetv2 width multiplier.")] = tc.default("width"),
              weights: Annotated[str, typer.Option(help="resnet50v2 backbone: imagenet (Keras "
                                                   "download), none, or a local .h5 file of ResNet50V2 no-top weights "
                                                   "for offline use (docs/training.md).")] = tc.default("weights"),
              backbone_size: Annotated[int, typer.Option(help="resnet50v2: input side after upsampling inside "
                                                         "the model.")] = tc.default("backbone_size"),
              freeze_epochs: Annotated[Optional[int], typer.Option(help="resnet50v2: epochs with the backbone "
                                                                   "frozen before fine-tuning [default: 1/3].")]
              = tc.default("freeze_epochs"),
              tensorboard: Annotated[bool, typer.Option(help="Write TensorBoard logs to RUN/tensorboard.")]
              = tc.default("tensorboard"),
              steps_per_execution: Annotated[int, typer.Option(help="Training steps per tf.function call: fewer "
                                                               "Python round trips; progress and the NaN check "
                                                               "see every k-th step.")]
              = tc.default("steps_per_execution"),
              low_res_epochs: Annotated[int, typer.Option(help="Progressive resizing: train the first K epochs on "
                                                          "images scaled down to --low-res, then full size "
                                                          "(resnet8, resnetN, mobilenetv2).")]
              = tc.default("low_res_epochs"),
              low_res: Annotated[Optional[int], typer.Option(help="Longer side of the --low-res-epochs images, px "
                                                             "[default: 3/4 of the images'].")] = tc.default("low_res"),
              class_weight: ClassWeightOpt = ClassWeight(tc.default("class_weight")),
              stream: StreamOpt = tc.default("stream"),
              preset: Annotated[Optional[Preset], typer.Option(help=_preset_help())] = None,
              resume: Annotated[Optional[Path], typer.Option(help="Continue the interrupted run RUN from its last "
                                                             "epoch checkpoint (other options are ignored).",
                                                             metavar="RUN")] = None):
    """Train a model and write a run directory (model.keras, history, curves, metrics, TensorBoard, manifest)."""
    data_options = {"image_size": image_size, "resize": resize, "test_split": test_split, "strict_data": strict_data}
    options = {k: v for k, v in locals().items() if k not in ("ctx", "data", "limit_train", "limit_test", "seed",
                                                              "out_dir", "overwrite", "preset", "resume",
                                                              "data_options", *data_options)}
    with errors():
        if resume is not None:
            from edgesmith.train import resume as resume_run

            print_trained(resume_run(resume))
            return
        if data is None:
            raise ConfigError("--data is required (or --resume RUN)")
        # the options set on the command line, even to their default value (click's ParameterSource)
        explicit = {k for k in options if ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP")}
        config = build_config(data, limit_train=limit_train, limit_test=limit_test, seed=seed,
                              preset=preset.value if preset else None, explicit=explicit, **data_options, **options)
        run_train(config, out_dir, overwrite)
