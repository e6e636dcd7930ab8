"""Config dicts come from the dataclass fields: every field is recorded, read back equal (tuples
from JSON lists, nested configs from dicts), and a manifest written before a field existed still
loads with that field's default. TF-free: the configs need no TensorFlow."""
from __future__ import annotations

import dataclasses
import json

import pytest

from edgesmith.core import configdict
from edgesmith.core.data import DataSpec
from edgesmith.export.config import ExportConfig
from edgesmith.export.finetune import FineTune
from edgesmith.train.config import TrainConfig

SPEC = DataSpec("synthetic", limit_train=300, limit_test=40, seed=3, image_size=(24, 40), resize="pad",
                test_split=0.25, split_seed=5, strict=True)
CONFIGS = {
    "DataSpec default": DataSpec("cifar10"),
    "DataSpec set": SPEC,
    "TrainConfig default": TrainConfig(DataSpec("synthetic")),
    "TrainConfig set": TrainConfig(SPEC, model="cnn", epochs=3, batch_size=32, learning_rate=0.02, optimizer="sgd",
                                   weight_decay=5e-4, patience=2, augment="none", cutout=True, freeze_epochs=1,
                                   low_res=16, class_weight="auto", stream=True, seed=9),
    "ExportConfig default": ExportConfig(),
    "ExportConfig set": ExportConfig(formats=("tflite",), variants=("int8", "fp16"), artifacts=("tflite_int8",),
                                     calibration_size=64, targets=("x86-vnni", "arm64"), verify_size=50,
                                     min_agreement_fp32=0.95, min_agreement_int8=0.5, max_accuracy_drop=1.5,
                                     prune=0.5, structured_2_4=True, cluster=16, qat=True,
                                     qat_tune=FineTune(epochs=2, learning_rate=3e-4, limit=100, label_smoothing=0.1),
                                     diagnose=True, float_layers=("conv2d_3", "logits"), fallback="auto",
                                     validation_size=200),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_config_survives_json_field_for_field(name):
    config = CONFIGS[name]
    d = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(d) == config
    # every field is recorded (TrainConfig leaves out how it prints, which no run depends on)
    recorded = {f.name for f in dataclasses.fields(config)} - {"quiet"}
    assert set(d) == recorded


def test_the_export_record_holds_what_was_dropped_before():
    d = CONFIGS["ExportConfig set"].to_dict()
    assert d["artifacts"] == ["tflite_int8"] and d["diagnose"] is True
    assert (d["min_agreement_fp32"], d["min_agreement_int8"]) == (0.95, 0.5)
    assert d["qat_tune"] == {"epochs": 2, "batch_size": 128, "learning_rate": 3e-4, "limit": 100,
                             "label_smoothing": 0.1}


def test_an_old_record_without_the_newer_fields_loads_with_their_defaults():
    # a dataset spec from before image_size, resize, test_split, split_seed and strict; extra keys ignored
    spec = DataSpec.from_dict({"source": "cifar10", "limit_train": None, "limit_test": 100, "seed": 1,
                               "class_names": ["a", "b"]})
    assert spec == DataSpec("cifar10", limit_test=100, seed=1)
    old_train = {k: v for k, v in CONFIGS["TrainConfig set"].to_dict().items()
                 if k not in ("class_weight", "stream", "low_res", "low_res_epochs")}
    old_train["data"] = {"source": "synthetic", "limit_train": 300}
    back = TrainConfig.from_dict({**old_train, "augment_used": "none"})
    assert (back.class_weight, back.stream, back.low_res) == ("none", None, None)
    assert back.model == "cnn" and back.data == DataSpec("synthetic", limit_train=300)
    old_export = {"formats": ["tflite"], "variants": ["int8"], "calibration_size": 64,
                  "prune_tune": {"epochs": 3, "batch_size": 128, "learning_rate": 5e-4, "limit": None}}
    config = ExportConfig.from_dict(old_export)
    assert config == ExportConfig(formats=("tflite",), variants=("int8",), calibration_size=64,
                                  prune_tune=FineTune(epochs=3, learning_rate=5e-4))


def test_overrides_replace_fields_and_bad_values_still_fail():
    d = CONFIGS["TrainConfig default"].to_dict()
    assert TrainConfig.from_dict(d, epochs=7).epochs == 7
    from edgesmith.core.errors import ConfigError

    with pytest.raises(ConfigError):
        configdict.from_dict(TrainConfig, {**d, "epochs": 0})
