"""TrainConfig, its choices and the presets: TF-free, and the single source of the CLI's options."""
import inspect
import typing

import pytest

from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError
from edgesmith.train.config import (AUGMENTS, PRESET_OPTIONS, SCHEDULES, STRATEGIES, TRAIN_DEFAULTS, TrainConfig,
                                    apply_preset, preset_config)


def test_fast_preset_keeps_its_share_of_low_res_epochs_and_batch_scaled_lr():
    p = apply_preset("fast", TRAIN_DEFAULTS)
    assert (p["epochs"], p["low_res_epochs"], p["low_res"], p["batch_size"], p["learning_rate"]) == \
        (20, 12, 16, 512, 1.2)
    p = apply_preset("fast", {**TRAIN_DEFAULTS, "epochs": 5, "batch_size": 256}, {"epochs", "batch_size"})
    assert (p["low_res_epochs"], p["learning_rate"]) == (3, 0.6)
    p = apply_preset("fast", {**TRAIN_DEFAULTS, "epochs": 5, "low_res_epochs": 2, "learning_rate": 0.5},
                     {"epochs", "low_res_epochs", "learning_rate"})
    assert (p["low_res_epochs"], p["learning_rate"]) == (2, 0.5)  # explicit values win
    # a value set explicitly to the default wins too (epochs=10 is the default)
    p = apply_preset("fast", TRAIN_DEFAULTS, {"epochs", "optimizer"})
    assert (p["epochs"], p["low_res_epochs"], p["optimizer"]) == (10, 6, "adam")
    with pytest.raises(ConfigError, match="unknown preset 'slow'"):
        apply_preset("slow", TRAIN_DEFAULTS)


def test_preset_config_builds_a_valid_config():
    c = preset_config("fast", DataSpec("synthetic"), epochs=4)
    assert (c.model, c.epochs, c.low_res_epochs, c.optimizer, c.batch_size) == ("resnet8", 4, 2, "sgd", 512)
    assert abs(c.learning_rate - 1.2) < 1e-9


def test_cli_train_options_take_their_defaults_and_choices_from_trainconfig():
    from edgesmith.cli.train_cmd import train_cmd

    params = inspect.signature(train_cmd).parameters
    fields = TrainConfig.__dataclass_fields__
    compared = 0
    for name, p in params.items():
        field = {"lr": "learning_rate"}.get(name, name)
        if field in fields and field != "data":
            default = getattr(p.default, "value", p.default)
            assert default == fields[field].default, name
            compared += 1
    assert compared >= len(PRESET_OPTIONS)
    hints = typing.get_type_hints(train_cmd, include_extras=True)
    for option, choices in (("augment", AUGMENTS), ("schedule", SCHEDULES), ("strategy", STRATEGIES)):
        assert [m.value for m in hints[option].__origin__] == list(choices), option


def test_config_is_checked_without_tensorflow():
    with pytest.raises(ConfigError, match="unknown model 'vgg'"):
        TrainConfig(DataSpec("synthetic"), model="vgg")
    with pytest.raises(ConfigError, match="fully convolutional"):
        TrainConfig(DataSpec("synthetic"), model="cnn", epochs=4, low_res_epochs=2)
