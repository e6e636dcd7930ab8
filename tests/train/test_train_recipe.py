"""Precision (fp16 loss scaling), strategy choice, recipe options, NaN handling."""
import json

import numpy as np
import pytest

from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError
from edgesmith.train import TrainConfig, build_model, train
from edgesmith.train.checkpoint import TrainingDiverged, read_state, work_dir
from edgesmith.train.strategy import cluster_role, resolve_kind

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


def _cluster(task_type, index, chief=True, **extra):
    cluster = {"worker": ["127.0.0.1:2", "127.0.0.1:3"], **extra}
    if chief:
        cluster["chief"] = ["127.0.0.1:1"]
    return {"cluster": cluster, "task": {"type": task_type, "index": index}}


@pytest.mark.parametrize("cfg, role", [
    (TWO_WORKERS, (2, 0)),
    ({**TWO_WORKERS, "task": {"type": "worker", "index": 1}}, (2, 1)),
    (_cluster("chief", 0), (3, 0)),
    # with a chief in the cluster, worker 0 is not the chief: it must not write the run directory
    (_cluster("worker", 0), (3, 1)),
    (_cluster("worker", 1), (3, 2)),
])
def test_cluster_role_makes_the_chief_rank_zero(cfg, role):
    assert cluster_role(cfg) == role


def test_chief_and_one_worker_is_multiworker(monkeypatch):
    cfg = {"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]}, "task": {"type": "chief", "index": 0}}
    assert resolve_kind("auto", gpus=0, cfg=cfg) == "multiworker"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["127.0.0.1:1"]}, "task": {"type": "chief"}}))
    assert resolve_kind("auto", gpus=0) == "none"  # a one-process cluster


@pytest.mark.parametrize("cfg, msg", [
    (_cluster("worker", 2), "task worker 2 is not in the cluster"),
    (_cluster("chief", 0, chief=False), "task chief 0 is not in the cluster"),
    (_cluster("ps", 0, ps=["127.0.0.1:4"]), "ps tasks"),
    ({"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}, "2 chiefs"),
])
def test_cluster_roles_other_strategies_own_are_refused(cfg, msg):
    with pytest.raises(ConfigError, match=msg):
        resolve_kind("multiworker", gpus=0, cfg=cfg)


def test_multiworker_without_tf_config_is_refused(monkeypatch):
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        resolve_kind("multiworker", gpus=0, cfg={})
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(ConfigError, match="TF_CONFIG must be JSON"):
        resolve_kind("auto", gpus=0)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"ps": ["127.0.0.1:1"]}}')
    with pytest.raises(ConfigError, match="TF_CONFIG must be JSON"):
        resolve_kind("auto", gpus=0)


def test_bad_recipe_options_fail_fast():
    spec = DataSpec("synthetic")
    for kw, msg in [({"strategy": "tpu"}, "unknown strategy"), ({"schedule": "step"}, "unknown schedule"),
                    ({"augment": "mixup"}, "unknown augmentation"), ({"label_smoothing": 0.7}, "^label_smoothing must"),
                    ({"patience": 0}, "^patience must"), ({"model": "resnet21"}, "unknown model"),
                    ({"freeze_epochs": 5, "epochs": 2}, "^freeze_epochs must"), ({"optimizer": "lamb"}, "unknown optimizer"),
                    ({"optimizer": "sgd", "learning_rate": 20.0}, r"^learning_rate must be in \(0, 10\), got 20.0")]:
        with pytest.raises(ConfigError, match=msg):
            TrainConfig(spec, **kw)
    assert TrainConfig(spec, model="resnet56").model == "resnet56"


def test_fp16_wraps_the_optimizer_in_loss_scaling_and_keeps_a_float32_head():
    from edgesmith.tfshim import keras
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
    from edgesmith.tfshim import keras
    from edgesmith.train.recipe import make_loss, make_optimizer

    assert isinstance(make_optimizer(1e-3, weight_decay=1e-4, policy="float32"), keras.optimizers.AdamW)
    probs = np.full((1, 4), 0.25, dtype="float32")
    probs_onehot = np.array([[0.97, 0.01, 0.01, 0.01]], dtype="float32")
    smooth, plain = make_loss(0.2), make_loss(0.0)
    # a confident correct prediction costs more under smoothing; a uniform one the same
    mean = lambda loss, y, p: float(np.mean(loss(y, p)))  # noqa: E731  smoothed loss is per example
    assert mean(smooth, np.array([0]), probs_onehot) > mean(plain, np.array([0]), probs_onehot) + 0.1
    assert mean(smooth, np.array([0]), probs) == pytest.approx(mean(plain, np.array([0]), probs), rel=1e-5)


def test_learning_rate_defaults_to_the_optimizers_own_and_is_recorded_resolved():
    spec = DataSpec("synthetic")
    assert TrainConfig(spec).learning_rate == 3e-3
    assert TrainConfig(spec, optimizer="sgd", batch_size=256).learning_rate == pytest.approx(0.2)  # 0.1 per 128
    assert TrainConfig(spec, optimizer="sgd", learning_rate=0.05).learning_rate == 0.05
    assert TrainConfig(spec, optimizer="sgd").to_dict()["learning_rate"] == pytest.approx(0.1)


def test_sgd_is_nesterov_with_decoupled_weight_decay_sparing_batchnorm():
    from edgesmith.tfshim import keras
    from edgesmith.train.recipe import make_optimizer

    opt = make_optimizer(0.1, weight_decay=5e-3, policy="float32", optimizer="sgd")
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov and opt.momentum == pytest.approx(0.9)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    before = [v.numpy().copy() for v in model.trainable_variables]
    opt.apply_gradients([(tf_zeros_like(v), v) for v in model.trainable_variables])  # decay only
    after = {v.name: v.numpy() for v in model.trainable_variables}
    kernel = next(name for name in after if "kernel" in name)
    np.testing.assert_allclose(after[kernel], before[0] * (1 - 0.1 * 5e-3), rtol=1e-6)
    gamma = next(name for name in after if "gamma" in name)
    np.testing.assert_array_equal(after[gamma], 1.0)  # BatchNorm scale is not decayed
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(0.1, weight_decay=0.0, policy="float32", optimizer="lamb")


def tf_zeros_like(v):
    from edgesmith.tfshim import tf

    return tf.zeros_like(v)


def test_sgd_trains_a_cnn_on_learnable_data(tmp_path):
    config = TrainConfig(DataSpec("synthetic", limit_train=1000, limit_test=200), model="cnn", epochs=3,
                         batch_size=64, quiet=True, optimizer="sgd", weight_decay=5e-3, val_split=0.0,
                         tensorboard=False)
    run = train(config, tmp_path / "run")
    assert json.loads(run.metrics.read_text())["top1"] > 0.5  # 10 classes: chance is 0.1
    recorded = json.loads(run.config.read_text())
    assert recorded["optimizer"] == "sgd" and recorded["learning_rate"] == pytest.approx(0.05)


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


@pytest.mark.parametrize("steps_per_execution, where", [(1, "step 4"), (4, "steps 1-4")])
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                               steps_per_execution, where):
    import edgesmith.train.loop as loop
    from edgesmith.tfshim import tf

    real = loop.compile_model

    def compile_then_poison(model, **kw):  # the loss turns NaN from the 4th step of epoch 2 on
        real(model, **kw)
        loss, steps = model.compiled_loss._user_losses, kw["steps_per_epoch"]

        def poisoned(y, p):
            bad = model.optimizer.iterations >= steps + 3
            return loss(y, p) * tf.where(bad, float("nan"), 1.0)

        model.compile(optimizer=model.optimizer, loss=poisoned, metrics=["accuracy"],
                      steps_per_execution=kw["steps_per_execution"])

    monkeypatch.setattr(loop, "compile_model", compile_then_poison)
    config = TrainConfig(DataSpec("synthetic", limit_train=512, limit_test=64), model="cnn", epochs=3,
                         batch_size=64, val_split=0, quiet=True, tensorboard=False,
                         steps_per_execution=steps_per_execution)
    # 8 steps an epoch; with 4 per tf.function call the check sees steps 4 and 8 only
    with pytest.raises(TrainingDiverged, match=rf"NaN at epoch 2, {where};.*last good checkpoint \(epoch 1\)") as e:
        train(config, tmp_path / "run")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()
    state = read_state(work_dir(tmp_path / "run"))
    assert state["epoch"] == 1 and all(np.isfinite(v) for v in state["history"]["loss"])
