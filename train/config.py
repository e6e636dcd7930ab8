"""What to train: :class:`TrainConfig`, the choices it accepts and the named presets. No TensorFlow.

The CLI builds its options, choices and defaults from this module (so ``edgesmith train`` and
``edgesmith pipeline`` cannot drift from the library), and a device without the ``[train]``
extra can still parse and validate a training config.

Example::

    from edgesmith.core.data import DataSpec
    from edgesmith.train.config import TrainConfig, preset_config
    config = TrainConfig(DataSpec("synthetic"), model="cnn", epochs=2)
    fast = preset_config("fast", DataSpec("cifar10"))      # the `--preset fast` recipe
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgesmith.core import configdict
from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError

# --- choices (one source of truth for the library and the CLI) -------------------------

MODEL_NAMES = ("resnet8", "resnet20", "cnn", "lenet5", "mobilenetv2", "resnet50v2")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")
SCHEDULES = ("cosine", "onecycle", "constant")
OPTIMIZERS = ("adam", "sgd")
AUGMENTS = ("auto", "default", "shift", "rotate-shift", "zoom-shift", "none")
CLASS_WEIGHTS = ("none", "auto")  # auto: inverse class frequency (edgesmith.core.perclass.class_weights)
# Sources of gray digit / character images (a flip changes their class): a dataset-level hint.
GRAY_SOURCES = ("mnist", "fashion_mnist")
_RESNET_N = re.compile(r"resnet(\d+)$")


def is_known(name: str) -> bool:
    """True for a name in :data:`MODEL_NAMES` or ``resnetN`` with N = 6k + 2."""
    m = _RESNET_N.match(name)
    return name in MODEL_NAMES or bool(m and int(m.group(1)) >= 8 and (int(m.group(1)) - 2) % 6 == 0)


def model_names() -> str:
    """Known names, for error messages and help."""
    return ", ".join(MODEL_NAMES) + ", resnetN (N = 6k+2)"


def any_input_size(name: str) -> bool:
    """True when ``name`` is fully convolutional up to global pooling (resnet8, resnetN,
    mobilenetv2), so it can train on smaller images than it is exported for."""
    return name == "mobilenetv2" or bool(_RESNET_N.match(name) and is_known(name))


# Adam peak learning rates per model where the 3e-3 default is not the best: LeNet-5 on the shared
# MNIST digits (6,400 train / 1,600 validation images, 10 epochs, one-cycle, two seeds; validation top-1):
# 3e-3 97.9%, 6e-3 98.6%, 1e-2 98.9% (docs/training.md).
ADAM_LR = {"lenet5": 1e-2}
# The input size (H, W) each architecture was designed for (others: 32x32, CIFAR): what a folder of
# images of mixed sizes is decoded to when no --image-size is given.
NATIVE_SIZE = {"lenet5": (28, 28)}
# Models built on a pretrained backbone -> the name of its Keras layer: they train in two phases, the
# backbone frozen first (TrainConfig.freeze_epochs, default a third of the epochs), then fine-tuned
# at a tenth of the peak learning rate (the generic loop asks this table, never a model's name).
BACKBONE_LAYER = {"resnet50v2": "backbone"}


def native_size(model: str) -> tuple[int, int]:
    """``(H, W)`` px the architecture ``model`` was designed for (:data:`NATIVE_SIZE`, else 32x32)."""
    return NATIVE_SIZE.get(model, (32, 32))


def default_learning_rate(optimizer: str, batch_size: int, model: str | None = None) -> float:
    """The peak learning rate ``optimizer`` gets when none is given: 0.1 per 128 images of batch
    for SGD (Goyal et al., 2017, linear scaling rule), 3e-3 for Adam (see :mod:`.recipe`) but
    :data:`ADAM_LR`'s rate for the models listed there (lenet5: 1e-2)."""
    return 0.1 * batch_size / 128 if optimizer == "sgd" else ADAM_LR.get(model, 3e-3)


# --- the config ------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, and how.

    Attributes:
        data: the dataset to train on (see :class:`~edgesmith.core.data.DataSpec`).
        model: architecture name (see :data:`MODEL_NAMES`: resnet8, resnet20, resnetN, cnn, lenet5,
            mobilenetv2, resnet50v2).
        epochs: passes over the training split (including any frozen-backbone epochs).
        batch_size: images per step per replica (the global batch is ``batch_size * replicas``).
        learning_rate: peak learning rate for one replica; scaled linearly with the replicas.
            None picks the optimizer's default (3e-3 for Adam, 1e-2 for lenet5 with Adam, 0.1 per 128
            images of batch for SGD).
        val_split: fraction of the training split held out for validation curves.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see :mod:`.precision`).
        seed: seeds weights, shuffling and the validation hold-out.
        strategy: ``auto``, ``none``, ``mirrored`` or ``multiworker`` (see :mod:`.strategy`).
        schedule: ``cosine``, ``onecycle`` (default) or ``constant`` (see :mod:`.recipe`).
        label_smoothing: in [0, 0.5); 0 turns it off (the default one-cycle + 0.1 recipe and
            its measurements: docs/training.md).
        optimizer: ``adam`` (default) or ``sgd`` (Nesterov momentum 0.9; see :mod:`.recipe`).
        weight_decay: decoupled weight decay (AdamW for ``adam``); 0 turns it off.
        patience: stop after this many epochs without a better validation loss (training loss
            without a validation split) and keep the best weights; None trains every epoch.
        augment: ``auto`` (default: chosen from the data by :func:`resolve_augment`), ``default``,
            ``shift``, ``rotate-shift``, ``zoom-shift`` or ``none`` (see :mod:`.input`).
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
        class_weight: ``none``, or ``auto``: weight each training image's loss by the inverse
            frequency of its class (normalised to a mean weight of 1 per image,
            :func:`edgesmith.core.perclass.class_weights`), for imbalanced folders; the weights
            are recorded in ``metrics.json``.
        stream: read the training images from the files batch by batch instead of decoding the
            split into memory (:mod:`.input`); None decides from the decoded size against the
            memory budget (:func:`.input.should_stream`), and the log says which.
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
    augment: str = "auto"
    cutout: bool = False
    width: float = 1.0
    weights: str = "none"
    backbone_size: int = 224
    freeze_epochs: int | None = None
    tensorboard: bool = True
    steps_per_execution: int = 1
    low_res_epochs: int = 0
    low_res: int | None = None
    class_weight: str = "none"
    stream: bool | None = None
    quiet: bool = field(default=False, compare=False)

    def __post_init__(self):
        def choice(name, value, options):
            if value not in options:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(options)}")

        if not is_known(self.model):
            raise ConfigError(f"unknown model {self.model!r}; choose one of {model_names()}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}", field="TrainConfig.epochs")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}", field="TrainConfig.batch_size")
        choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.learning_rate is None:  # recorded resolved, so the manifest says what was used
            object.__setattr__(self, "learning_rate", default_learning_rate(self.optimizer, self.batch_size,
                                                                              self.model))
        if not 0 < self.learning_rate < 10:
            raise ConfigError(f"learning_rate must be in (0, 10), got {self.learning_rate}",
                              field="TrainConfig.learning_rate")
        if not 0 <= self.val_split < 0.5:
            raise ConfigError(f"val_split must be in [0, 0.5), got {self.val_split}", field="TrainConfig.val_split")
        choice("precision", self.precision, PRECISION_CHOICES)
        choice("strategy", self.strategy, STRATEGIES)
        choice("schedule", self.schedule, SCHEDULES)
        choice("augmentation", self.augment, AUGMENTS)
        choice("class weight", self.class_weight, CLASS_WEIGHTS)
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}",
                              field="TrainConfig.label_smoothing")
        if not 0 <= self.weight_decay < 1:
            raise ConfigError(f"weight_decay must be in [0, 1), got {self.weight_decay}",
                              field="TrainConfig.weight_decay")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1, got {self.patience}", field="TrainConfig.patience")
        if not 0 < self.width <= 4:
            raise ConfigError(f"width must be in (0, 4], got {self.width}", field="TrainConfig.width")
        if not 32 <= self.backbone_size <= 1024:
            raise ConfigError(f"backbone_size must be in [32, 1024], got {self.backbone_size}",
                              field="TrainConfig.backbone_size")
        if not 1 <= self.steps_per_execution <= 10_000:
            raise ConfigError(f"steps_per_execution must be in [1, 10000], got {self.steps_per_execution}",
                              field="TrainConfig.steps_per_execution")
        if self.freeze_epochs is not None and not 0 <= self.freeze_epochs <= self.epochs:
            raise ConfigError(f"freeze_epochs must be in [0, epochs], got {self.freeze_epochs}",
                              field="TrainConfig.freeze_epochs")
        if not 0 <= self.low_res_epochs < self.epochs:
            raise ConfigError(f"low_res_epochs must be in [0, epochs), got {self.low_res_epochs}",
                              field="TrainConfig.low_res_epochs")
        if self.low_res_epochs and not any_input_size(self.model):
            raise ConfigError(f"low_res_epochs needs a fully convolutional network (resnet8, resnetN, "
                              f"mobilenetv2), not {self.model}", field="TrainConfig.low_res_epochs")
        if self.low_res is not None and self.low_res < 8:
            raise ConfigError(f"low_res must be >= 8 pixels, got {self.low_res}", field="TrainConfig.low_res")

    def to_dict(self) -> dict:
        """The fields as JSON-ready values (:func:`edgesmith.core.configdict.to_dict`), without
        ``quiet`` (how a run prints is no part of its recipe)."""
        d = configdict.to_dict(self)
        d.pop("quiet")
        return d

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "TrainConfig":
        """Rebuild a config from :meth:`to_dict` output (unknown keys are ignored, missing ones
        keep their defaults); ``overrides`` replace fields."""
        return configdict.from_dict(cls, d, **overrides)

    def model_options(self) -> dict:
        return {"width": self.width, "weights": self.weights, "size": self.backbone_size}

    def phases(self) -> list[tuple[int, int, bool]]:
        """``(first_epoch, end_epoch, backbone_frozen)`` per phase (two for a model with a
        pretrained backbone, :data:`BACKBONE_LAYER`)."""
        if self.model not in BACKBONE_LAYER:
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
            raise ConfigError(f"low_res must be in [8, {side}) for {image_hw[0]}x{image_hw[1]} images, got {low}",
                              field="TrainConfig.low_res")
        return tuple(max(1, round(d * low / side)) for d in image_hw)


def resolve_augment(augment: str, image_shape: tuple[int, int, int], source: str | None = None) -> tuple[str, str]:
    """The augmentation preset to train with, and why (for the training log and the run's record).

    ``auto`` looks at the data: gray images (1 channel) or a source of digits/characters
    (:data:`GRAY_SOURCES`: ``mnist``, ``fashion_mnist``) get ``shift`` (small shifts, no flip: a
    flipped 2, 3, 7 or letter is another shape); colour images get ``default`` (flip + pad-4-and-crop,
    the CIFAR-10 recipe). Any other value is the user's choice and is kept.

    Args:
        augment: one of :data:`AUGMENTS`.
        image_shape: ``(H, W, C)`` of the training images.
        source: the dataset source (``DataSpec.source``), for the dataset-level hint.

    Returns:
        ``(preset, reason)``: a preset of :data:`AUGMENTS` other than ``auto``, and one line saying why.

    Raises:
        ConfigError: unknown ``augment``.
    """
    if augment not in AUGMENTS:
        raise ConfigError(f"unknown augmentation {augment!r}; choose one of {', '.join(AUGMENTS)}")
    if augment != "auto":
        return augment, "set with --augment"
    h, w, c = (int(d) for d in image_shape)
    if c == 1:
        return "shift", f"{h}x{w} gray images (1 channel), e.g. digits or characters: a flip changes the class"
    if source in GRAY_SOURCES:
        return "shift", f"{source} holds digits/characters: a flip changes the class"
    pad = max(1, round(min(h, w) / 8))  # input.pad_pixels (TF-free here)
    return "default", (f"{h}x{w} colour images ({c} channels): flip + pad-{pad}-and-crop (1/8 of the side), "
                       "the CIFAR-10 recipe")


def default(name: str):
    """:class:`TrainConfig`'s default for field ``name`` (what the CLI shows and uses)."""
    f = TrainConfig.__dataclass_fields__[name]
    return f.default


# --- presets ---------------------------------------------------------------------------

# A preset gives values to the options not set explicitly (explicit flags win).
# fast: ResNet-8, float32 (its 16-64-channel layers are too small for AMX to pay for bf16 casts),
# SGD + weight decay, one-cycle at peak lr 0.3 per 128 images (scaled with the batch; an explicit
# --lr wins), batch 512, progressive resizing (12 epochs at 16 px, then 8 at 32 px), no validation
# hold-out. Why each value, with the sweeps behind it: docs/experiments.md.
PRESETS = {"fast": {"model": "resnet8", "epochs": 20, "batch_size": 512, "learning_rate": None,
                    "schedule": "onecycle", "label_smoothing": 0.1, "val_split": 0.0, "precision": "fp32",
                    "optimizer": "sgd", "weight_decay": 5e-3, "lr_per_128": 0.3,
                    "low_res_epochs": 12, "low_res": 16}}

# The TrainConfig fields a preset may set (the keys of PRESETS' values, but lr_per_128).
PRESET_OPTIONS = ("model", "epochs", "batch_size", "learning_rate", "schedule", "label_smoothing", "val_split",
                  "precision", "optimizer", "weight_decay", "low_res_epochs", "low_res")
TRAIN_DEFAULTS = {k: default(k) for k in PRESET_OPTIONS}


def apply_preset(name: str, given: dict, explicit=frozenset()) -> dict:
    """``given`` (TrainConfig field -> value, keys :data:`PRESET_OPTIONS`) with preset ``name``'s
    values for the fields not in ``explicit`` (those set by the caller, even to their default).

    An unset ``learning_rate`` becomes the preset's per-128-images rate scaled with the batch, and the
    preset's low-resolution epochs keep their share of a different ``epochs``.

    Raises:
        ConfigError: unknown preset.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = PRESETS[name]
    out = {**given, **{k: v for k, v in values.items() if k in given and k not in explicit}}
    if out["learning_rate"] is None and "lr_per_128" in values:
        out["learning_rate"] = values["lr_per_128"] * out["batch_size"] / 128
    if "low_res_epochs" not in explicit and values.get("low_res_epochs"):
        share = values["low_res_epochs"] / values["epochs"]
        out["low_res_epochs"] = min(out["epochs"] - 1, round(share * out["epochs"]))
    return out


def preset_config(name: str, data: DataSpec, **explicit) -> TrainConfig:
    """The :class:`TrainConfig` of preset ``name`` on ``data``; ``explicit`` fields win over it.

    Raises:
        ConfigError: unknown preset or an invalid value.
    """
    given = {**TRAIN_DEFAULTS, **{k: v for k, v in explicit.items() if k in PRESET_OPTIONS}}
    resolved = apply_preset(name, given, frozenset(explicit))
    return TrainConfig(data, **{**explicit, **resolved})
