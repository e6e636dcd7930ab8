"""Every seed model builds, trains a step, exports to int8 TFLite and runs in the runtime."""
import json
import warnings

import numpy as np
import pytest

from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError
from edgesmith.train import TrainConfig, build_model, train

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("name, shape, options, params", [
    ("resnet8", (32, 32, 3), {}, 78_714),
    ("resnet20", (32, 32, 3), {}, 274_042),   # He et al.: 0.27 M
    ("cnn", (32, 32, 3), {}, 122_570),
    ("lenet5", (28, 28, 1), {}, 61_706),
    ("mobilenetv2", (32, 32, 3), {"width": 0.35}, None),
    ("resnet50v2", (32, 32, 3), {"size": 40}, 23_585_290),
])
def test_model_trains_a_step_exports_int8_and_runs(name, shape, options, params, tmp_path):
    from edgesmith.export.tflite import to_tflite
    from edgesmith.runtime import load
    from edgesmith.train.recipe import compile_model

    model = build_model(name, shape, 10, **options)
    if params:
        assert model.count_params() == params
    compile_model(model, peak_lr=1e-3, schedule_kind="constant", steps_per_epoch=1, epochs=1,
                  weight_decay=1e-4, label_smoothing=0.1, policy="float32")
    x = RNG.integers(0, 256, (8, *shape)).astype(np.uint8)
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x.astype("float32"), np.arange(8) % 10)[0]
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = to_tflite(model, tmp_path / f"{name}_int8.tflite", precision="int8", representative=x)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]  # TF's known noise is filtered
    probs = load(path).predict(x[:4])
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=0.05)


def test_resnet_depth_must_be_6k_plus_2():
    with pytest.raises(ConfigError, match="unknown model 'resnet21'"):
        build_model("resnet21", (32, 32, 3), 10)
    assert build_model("resnet32", (32, 32, 3), 10).count_params() == 469_370  # ResNet-n, n = 6k + 2


def test_resnet50v2_loads_a_local_weights_file_and_upsamples_inside(tmp_path):
    from edgesmith.tfshim import keras

    backbone = keras.applications.ResNet50V2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "notop.h5"
    backbone.save_weights(path)
    model = build_model("resnet50v2", (32, 32, 3), 10, weights=str(path), size=64)
    np.testing.assert_array_equal(model.get_layer("backbone").get_layer("conv1_conv").get_weights()[0],
                                  backbone.get_layer("conv1_conv").get_weights()[0])
    assert model.get_layer("upsample").output_shape == (None, 64, 64, 3)
    with pytest.raises(ConfigError, match="no such file"):
        build_model("resnet50v2", (32, 32, 3), 10, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ConfigError, match="3-channel"):
        build_model("resnet50v2", (28, 28, 1), 10)


def test_imagenet_weights_without_internet_fail_in_one_line(monkeypatch):
    from tf_keras.src.utils import data_utils

    def offline(*a, **k):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data_utils, "get_file", offline)
    with pytest.raises(ConfigError, match=r"cannot download the ImageNet weights .*; set weights to the path of ") as e:
        build_model("resnet50v2", (32, 32, 3), 10, weights="imagenet", size=32)
    assert "\n" not in str(e.value)


def test_transfer_learning_freezes_the_backbone_then_fine_tunes(tmp_path):
    from edgesmith.tfshim import keras

    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.kernel = self.model.get_layer("backbone").get_layer("conv1_conv").kernel
            seen.append(("begin", self.model.get_layer("backbone").trainable, self.kernel.numpy().copy()))

        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, self.model.get_layer("backbone").trainable, self.kernel.numpy().copy()))

    config = TrainConfig(DataSpec("synthetic", limit_train=48, limit_test=16), model="resnet50v2", epochs=2,
                         freeze_epochs=1, backbone_size=32, batch_size=16, val_split=0, quiet=True,
                         tensorboard=False)
    run = train(config, tmp_path / "run", callbacks=[Watch()])
    (_, frozen, k0), (_, _, k1), (_, trainable, k2), (_, _, k3) = seen
    assert not frozen and trainable
    np.testing.assert_array_equal(k0, k1)  # phase 1: only the head learns
    assert not np.array_equal(k2, k3)      # phase 2: fine-tuning moves the backbone
    assert json.loads(run.metrics.read_text())["epochs"] == 2
