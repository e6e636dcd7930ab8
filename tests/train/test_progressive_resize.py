"""Progressive resizing (--low-res-epochs): the epoch plan, the pipeline, training and resume."""
import json

import numpy as np
import pytest

from edgesmith.core.data import DataSpec, synthetic_split
from edgesmith.core.errors import ConfigError
from edgesmith.train import TrainConfig, train
from edgesmith.train.checkpoint import read_state, work_dir
from edgesmith.train.input import make_dataset


def _config(**kw):
    base = dict(model="resnet8", epochs=4, low_res_epochs=2, batch_size=64, quiet=True, tensorboard=False,
                optimizer="sgd", weight_decay=5e-3, val_split=0.0)
    return TrainConfig(DataSpec("synthetic", limit_train=1000, limit_test=200), **{**base, **kw})


def test_the_low_res_epochs_come_first_then_full_size():
    c = _config(epochs=5)
    assert c.resolutions(0, 5, (32, 32)) == [(0, 2, (24, 24)), (2, 5, None)]  # default: 3/4 of the side
    assert _config(epochs=5, low_res=16).resolutions(0, 5, (32, 32)) == [(0, 2, (16, 16)), (2, 5, None)]
    assert c.resolutions(0, 5, (32, 48)) == [(0, 2, (24, 36)), (2, 5, None)]  # the longer side, aspect kept
    assert c.resolutions(3, 5, (32, 32)) == [(3, 5, None)]
    assert _config(low_res_epochs=0).resolutions(0, 4, (32, 32)) == [(0, 4, None)]


def test_bad_low_res_options_are_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"^low_res_epochs must be in \[0, epochs\)"):
        _config(low_res_epochs=4)
    with pytest.raises(ConfigError, match="fully convolutional network .* not cnn"):
        _config(model="cnn")
    with pytest.raises(ConfigError, match="^low_res must be >= 8"):
        _config(low_res=4)
    with pytest.raises(ConfigError, match=r"^low_res must be in \[8, 32\) for 32x32 images, got 32"):
        train(_config(low_res=32), tmp_path / "run")
    assert not (tmp_path / "run").exists() and not work_dir(tmp_path / "run").exists()


def test_the_pipeline_scales_batches_down():
    s = synthetic_split("train", 64)
    x, y = next(iter(make_dataset(s.images, s.labels, batch_size=32, training=True, resize_to=(16, 16))))
    assert x.shape == (32, 16, 16, 3) and x.dtype == np.float32 and y.shape == (32,)
    assert 0 <= float(np.min(x)) and float(np.max(x)) <= 255


def test_progressive_training_learns_and_exports_at_full_size(tmp_path, monkeypatch):
    import edgesmith.train.input as inp
    from edgesmith.tfshim import keras

    real, sizes = inp.make_dataset, []

    def recording(*a, **kw):
        ds = real(*a, **kw)
        if kw.get("training"):
            sizes.append(tuple(ds.element_spec[0].shape[1:3]))
        return ds

    monkeypatch.setattr(inp, "make_dataset", recording)
    run = train(_config(low_res=16), tmp_path / "run")
    assert sizes == [(16, 16), (32, 32)]  # one fit per resolution, low first
    metrics = json.loads(run.metrics.read_text())
    assert metrics["epochs"] == 4 and metrics["top1"] > 0.5  # 10 classes: chance is 0.1
    assert keras.models.load_model(run.model).input_shape == (None, 32, 32, 3)
    recorded = json.loads(run.config.read_text())
    assert recorded["low_res_epochs"] == 2 and recorded["low_res"] == 16


def test_a_run_stopped_at_the_switch_resumes_at_full_size(tmp_path):
    from edgesmith.tfshim import keras

    class Stop(keras.callbacks.Callback):  # a crash as the first full-size epoch begins
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("simulated crash")

    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_config(), out, callbacks=[Stop()])
    assert read_state(work_dir(out))["epoch"] == 2

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(int(self.model.optimizer.iterations))

    seen = []
    run = train(_config(), out, resume=True, callbacks=[Probe()])
    assert seen == [2 * 16]  # 1,000 images / batch 64: the schedule goes on from step 32, not 0
    metrics = json.loads(run.metrics.read_text())
    assert metrics["epochs"] == 4 and metrics["top1"] > 0.5
    assert len(run.history.read_text().splitlines()) == 5  # header + epochs 1-4


def test_the_cli_passes_the_options_and_refuses_a_model_that_cannot_shrink(tmp_path):
    from typer.testing import CliRunner

    from edgesmith.cli import app

    bad = CliRunner().invoke(app, ["train", "-d", "synthetic", "--model", "cnn", "--low-res-epochs", "1"])
    assert bad.exit_code == 1 and "fully convolutional" in bad.output and "Traceback" not in bad.output
    ok = CliRunner().invoke(app, ["train", "-d", "synthetic", "--limit-train", "200", "--limit-test", "50",
                                  "--epochs", "2", "--low-res-epochs", "1", "--low-res", "20", "--no-tensorboard",
                                  "-o", str(tmp_path / "run")])
    assert ok.exit_code == 0, ok.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["low_res_epochs"], config["low_res"]) == (1, 20)
