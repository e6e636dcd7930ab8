"""The fast int8 forms: folded input scaling and the ONNX presets, each checked for agreement."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgesmith.core.data import synthetic_split
from edgesmith.export.fold import fold_rescaling
from edgesmith.export.onnx import PRESETS, quantize_onnx, to_onnx
from edgesmith.runtime import load
from edgesmith.train import build_model
from edgesmith.tfshim import keras


@pytest.mark.parametrize("name", ["resnet8", "cnn"])
def test_folding_the_rescaling_keeps_the_function(name):
    model = build_model(name, (32, 32, 3), 10)
    folded = fold_rescaling(model)
    assert folded is not model
    assert not any(type(l).__name__ == "Rescaling" for l in folded.layers)
    x = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_nothing_to_fold_returns_the_model_itself():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)  # offset: zero padding would change
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same")(x))
    assert fold_rescaling(model) is model
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert fold_rescaling(plain) is plain


@pytest.fixture(scope="module")
def float_onnx(trained_run, tmp_path_factory):
    model = keras.models.load_model(trained_run.model, compile=False)
    path = tmp_path_factory.mktemp("onnx") / "fp32.onnx"
    to_onnx(fold_rescaling(model), path, labels=["a"] * 10)
    return path


def _input_zero_points(path):
    proto = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    return proto, [inits[n.input[2]] for n in proto.graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]


@pytest.mark.parametrize("preset, input_dtype", [("u8s8", "uint8"), ("u8s8-7bit", "uint8"), ("u8u8", "uint8"),
                                                 ("s8s8", "float32"),
                                                 ("tensorrt", "float32")])
def test_presets_agree_with_float_and_have_their_layout(float_onnx, tmp_path, preset, input_dtype):
    images = synthetic_split("train", 64, seed=5).images
    out = quantize_onnx(float_onnx, tmp_path / f"{preset}.onnx", calibration=images, preset=preset)
    runner = load(out, threads=1)
    assert runner.input_spec.dtype == input_dtype
    test = synthetic_split("test", 200).images
    ref = load(float_onnx, threads=1).predict(test).argmax(1)
    assert (runner.predict(test).argmax(1) == ref).mean() >= 0.9
    proto, zero_points = _input_zero_points(out)
    want = np.uint8 if PRESETS[preset].activations == "uint8" else np.int8
    assert zero_points and all(z.dtype == want for z in zero_points)
    if preset == "tensorrt":
        assert all(int(z) == 0 for z in zero_points)  # symmetric activations
    weights = [w for w in (numpy_helper.to_array(i) for i in proto.graph.initializer if i.name.endswith("_quantized"))
               if w.dtype != np.int32]  # not the int32 biases
    assert weights and all(w.dtype == (np.uint8 if PRESETS[preset].weights == "uint8" else np.int8) for w in weights)
    assert {p.key for p in proto.metadata_props} >= {"edgesmith.labels"}


def test_unknown_preset_or_method_is_refused(float_onnx, tmp_path):
    images = synthetic_split("train", 16).images
    with pytest.raises(ValueError, match="preset"):
        quantize_onnx(float_onnx, tmp_path / "x.onnx", calibration=images, preset="npu")
    with pytest.raises(ValueError, match="calibration method"):
        quantize_onnx(float_onnx, tmp_path / "x.onnx", calibration=images, method="kl")
    assert not (tmp_path / "x.onnx").exists()
