"""Precision (fp16 loss scaling), strategy choice, recipe options, NaN handling."""
import json

import numpy as np
import pytest

from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError
from edgesmith.train import TrainConfig, build_model, train
from edgesmith.train.checkpoint import TrainingDiverged, read_state, work_dir
from edgesmith.train.strategy import resolve_kind

TWO_WORKERS = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}


@pytest.mark.parametrize("name, gpus, cfg, kind", [
    ("auto", 0, {}, "none"),
    ("auto", 1, {}, "none"),
    ("auto", 2, {}, "mirrored"),
    ("auto", 0, TWO_WORKERS, "multiworker"),
    ("none", 4, TWO_WORKERS, "none"),
    ("mirrored", 0, {}, "mirrored"),
    ("multiworker", 0, TWO_WORKERS, "multiworker"),
])
def test_strategy_choice(name, gpus, cfg, kind):
    assert resolve_kind(name, gpus=gpus, cfg=cfg) == kind


def test_multiworker_without_tf_config_is_refused(monkeypatch):
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        resolve_kind("multiworker", gpus=0, cfg={})
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(ConfigError, match="TF_CONFIG must be JSON"):
        resolve_kind("auto", gpus=0)


def test_bad_recipe_options_fail_fast():
    spec = DataSpec("synthetic")
    for kw, msg in [({"strategy": "tpu"}, "unknown strategy"), ({"schedule": "step"}, "unknown schedule"),
                    ({"augment": "mixup"}, "unknown augmentation"), ({"label_smoothing": 0.7}, "--label-smoothing"),
                    ({"patience": 0}, "--patience"), ({"model": "resnet21"}, "unknown model"),
                    ({"freeze_epochs": 5, "epochs": 2}, "--freeze-epochs")]:
        with pytest.raises(ConfigError, match=msg):
            TrainConfig(spec, **kw)
    assert TrainConfig(spec, model="resnet56").model == "resnet56"


def test_fp16_wraps_the_optimizer_in_loss_scaling_and_keeps_a_float32_head():
    from edgesmith.train._keras import keras
    from edgesmith.train.recipe import compile_model

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("cnn", (32, 32, 3), 10)
        compile_model(model, peak_lr=1e-3, schedule_kind="cosine", steps_per_epoch=2, epochs=1,
                      weight_decay=0.0, label_smoothing=0.1, policy="mixed_float16")
        assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
        assert model.get_layer("logits").compute_dtype == "float16"
        assert model.get_layer("probs").compute_dtype == "float32"
        x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
        loss = model.train_on_batch(x, np.arange(8) % 10)[0]
        assert np.isfinite(loss)
        assert model.predict(x, verbose=0).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_adamw_and_label_smoothing():
    from edgesmith.train._keras import keras
    from edgesmith.train.recipe import make_loss, make_optimizer

    assert isinstance(make_optimizer(1e-3, weight_decay=1e-4, policy="float32"), keras.optimizers.AdamW)
    probs = np.full((1, 4), 0.25, dtype="float32")
    probs_onehot = np.array([[0.97, 0.01, 0.01, 0.01]], dtype="float32")
    smooth, plain = make_loss(0.2), make_loss(0.0)
    # a confident correct prediction costs more under smoothing; a uniform one the same
    mean = lambda loss, y, p: float(np.mean(loss(y, p)))  # noqa: E731  smoothed loss is per example
    assert mean(smooth, np.array([0]), probs_onehot) > mean(plain, np.array([0]), probs_onehot) + 0.1
    assert mean(smooth, np.array([0]), probs) == pytest.approx(mean(plain, np.array([0]), probs), rel=1e-5)


def test_early_stopping_tensorboard_and_recorded_recipe(tmp_path):
    config = TrainConfig(DataSpec("synthetic", limit_train=400, limit_test=100), model="cnn", epochs=3,
                         batch_size=64, quiet=True, schedule="onecycle", label_smoothing=0.1,
                         weight_decay=1e-4, patience=1, augment="zoom-shift", cutout=True, val_split=0.2)
    run = train(config, tmp_path / "run")
    metrics = json.loads(run.metrics.read_text())
    assert metrics["strategy"] == "none" and metrics["replicas"] == 1 and metrics["global_batch"] == 64
    assert 1 <= metrics["epochs"] <= 3 and metrics["stopped_early"] == (metrics["epochs"] < 3)
    assert list((run.root / "tensorboard").rglob("events.out.tfevents.*"))
    assert json.loads(run.config.read_text())["schedule"] == "onecycle"
    assert not work_dir(run.root).exists()


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import edgesmith.train.loop as loop
    from edgesmith.train._keras import tf

    real = loop.compile_model

    def compile_then_poison(model, **kw):  # the loss turns NaN from the 4th step of epoch 2 on
        real(model, **kw)
        loss, steps = model.compiled_loss._user_losses, kw["steps_per_epoch"]

        def poisoned(y, p):
            bad = model.optimizer.iterations >= steps + 3
            return loss(y, p) * tf.where(bad, float("nan"), 1.0)

        model.compile(optimizer=model.optimizer, loss=poisoned, metrics=["accuracy"])

    monkeypatch.setattr(loop, "compile_model", compile_then_poison)
    config = TrainConfig(DataSpec("synthetic", limit_train=512, limit_test=64), model="cnn", epochs=3,
                         batch_size=64, val_split=0, quiet=True, tensorboard=False)
    with pytest.raises(TrainingDiverged, match=r"NaN at epoch 2, step 4.*last good checkpoint \(epoch 1\)") as e:
        train(config, tmp_path / "run")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()
    state = read_state(work_dir(tmp_path / "run"))
    assert state["epoch"] == 1 and all(np.isfinite(v) for v in state["history"]["loss"])
