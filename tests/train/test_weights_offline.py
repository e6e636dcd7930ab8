"""Transfer learning offline: ``--weights FILE.h5`` loads a local ResNet50V2 no-top weights file
into resnet50v2's backbone (no download), and a file that does not fit is one clear error."""
from __future__ import annotations

import numpy as np
import pytest
from edgesmith.tfshim import keras
from edgesmith.train.config import TrainConfig

from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError

DATA = DataSpec("synthetic", limit_train=32, limit_test=16)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A ResNet50V2 no-top backbone with random (seeded) weights, saved like the Keras ImageNet file."""
    keras.utils.set_random_seed(123)
    backbone = keras.applications.ResNet50V2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("weights") / "resnet50v2_notop.h5"
    backbone.save_weights(str(path))
    return path, backbone.get_weights()


def test_backbone_starts_from_the_local_weights_file(weights_file, tmp_path):
    from edgesmith.train import train

    path, saved = weights_file
    config = TrainConfig(DATA, model="resnet50v2", weights=str(path), backbone_size=32, epochs=1, freeze_epochs=1,
                         batch_size=16, val_split=0.0, quiet=True, tensorboard=False)
    run = train(config, tmp_path / "run")
    backbone = keras.models.load_model(run.model, compile=False).get_layer("backbone")
    got = backbone.get_weights()
    assert len(got) == len(saved)
    # frozen for the one epoch: every backbone tensor (BatchNorm statistics included) is the file's
    for a, b in zip(got, saved):
        np.testing.assert_array_equal(a, b)
    # and the file really set them: a seed-0 random backbone differs
    keras.utils.set_random_seed(0)
    fresh = keras.applications.ResNet50V2(include_top=False, weights=None, input_shape=(32, 32, 3)).get_weights()
    assert not np.array_equal(fresh[0], saved[0])


def test_a_weights_file_that_does_not_fit_is_a_config_error(tmp_path):
    from edgesmith.train.models import build_model

    other = tmp_path / "lenet.h5"
    build_model("lenet5", (28, 28, 1), 10).save_weights(str(other))
    with pytest.raises(ConfigError, match="resnet50v2: cannot load weights from .*lenet.h5"):
        build_model("resnet50v2", (32, 32, 3), 10, weights=str(other), size=32)
    with pytest.raises(ConfigError, match="no such file"):
        build_model("resnet50v2", (32, 32, 3), 10, weights=str(tmp_path / "missing.h5"), size=32)
