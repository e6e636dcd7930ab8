"""Image loading (any size/mode, bad files) and `edgesmith predict` from the model file alone."""
import json
import shutil

import numpy as np
import pytest
from conftest import FIXTURE_MODELS
from PIL import Image
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.errors import DataError, EdgesmithError
from edgesmith.runtime import load, load_image
from edgesmith.runtime.images import find_images

SPEC = (32, 32, 3)


@pytest.fixture(scope="module")
def model_alone(tmp_path_factory):
    """The fixture int8 TFLite file copied to an empty folder: no manifest, labels only inside it."""
    path = tmp_path_factory.mktemp("alone") / "model_int8.tflite"
    shutil.copy(FIXTURE_MODELS / "model_int8.tflite", path)
    return path


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_an_image_at_model_size_reaches_the_model_unchanged(tmp_path):
    x = _rgb(32, 32)
    Image.fromarray(x).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", SPEC), x)


def test_any_mode_and_size_becomes_model_pixels(tmp_path):
    files = {
        "big.jpg": Image.fromarray(_rgb(480, 640)),
        "gray.bmp": Image.fromarray(np.full((20, 50), 100, np.uint8), "L"),
        "one.webp": Image.new("RGB", (1, 1), (10, 200, 30)),
        "pal.gif": Image.fromarray(_rgb(40, 40)).convert("P"),
        "cmyk.jpg": Image.new("CMYK", (64, 64), (0, 0, 0, 0)),
        "bits.png": Image.new("1", (33, 31), 1),
    }
    for name, im in files.items():
        im.save(tmp_path / name)
    for name in files:
        x = load_image(tmp_path / name, SPEC)
        assert x.shape == SPEC and x.dtype == np.uint8, name
    one = load_image(tmp_path / "one.webp", SPEC).astype(int)  # lossy WebP: +-2
    assert (one == one[0, 0]).all() and np.abs(one[0, 0] - [10, 200, 30]).max() <= 2
    assert (load_image(tmp_path / "gray.bmp", SPEC) == 100).all()
    assert load_image(tmp_path / "gray.bmp", (8, 8, 1)).shape == (8, 8, 1)
    assert (load_image(tmp_path / "cmyk.jpg", SPEC) >= 250).all()  # no ink = white


def test_16_bit_is_scaled_and_transparency_goes_over_white(tmp_path):
    Image.fromarray(np.full((10, 10), 65535, np.uint16)).save(tmp_path / "w16.png")
    Image.fromarray(np.full((10, 10), 32896, np.uint16)).save(tmp_path / "m16.png")
    assert (load_image(tmp_path / "w16.png", SPEC) == 255).all()
    assert (load_image(tmp_path / "m16.png", SPEC) == 128).all()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("RGBA", (8, 8), (0, 0, 255, 255)).save(tmp_path / "blue.png")
    assert (load_image(tmp_path / "clear.png", SPEC) == 255).all()
    np.testing.assert_array_equal(load_image(tmp_path / "blue.png", SPEC)[0, 0], [0, 0, 255])


def _bad_files(root):
    good = _rgb(32, 32)
    Image.fromarray(good).save(root / "full.jpg", quality=90)
    data = (root / "full.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "text.jpg").write_text("this is not a picture\n")
    (root / "empty.png").write_bytes(b"")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    return ["truncated.jpg", "text.jpg", "empty.png", "corrupt.png"]


def test_bad_files_are_one_line_data_errors_naming_the_file(tmp_path):
    for name in _bad_files(tmp_path) + ["missing.png"]:
        with pytest.raises(DataError) as e:
            load_image(tmp_path / name, SPEC)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_directories_are_walked_for_image_suffixes_only(tmp_path):
    for rel in ("a/1.JPG", "a/b/2.png", "a/notes.txt", "a/.hidden/3.png", "c.webp"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = find_images([tmp_path / "a", tmp_path / "c.webp", tmp_path / "x.bmp"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/1.JPG", "a/b/2.png", "c.webp", "x.bmp"]


def test_predict_skips_bad_files_predicts_the_rest_and_fails_the_exit_code(model_alone, tmp_path):
    bad = _bad_files(tmp_path)
    for i in range(3):
        Image.fromarray(_rgb(32 + 50 * i, 32 + 20 * i, seed=i)).save(tmp_path / f"good{i}.png")
    r = CliRunner().invoke(app, ["predict", str(model_alone), str(tmp_path), "--json", "-k", "2"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert sorted(e["path"].split("/")[-1] for e in doc["errors"]) == sorted(bad)
    names = [p["path"].split("/")[-1] for p in doc["predictions"]]
    assert names == ["full.jpg", "good0.png", "good1.png", "good2.png"]
    # the same probabilities as calling the runtime directly, labels from the file itself
    runner = load(model_alone)
    x = np.stack([load_image(p["path"], runner.input_spec) for p in doc["predictions"]])
    probs = runner.predict(x)
    for p, row in zip(doc["predictions"], probs):
        assert len(p["top_k"]) == 2 and p["top_k"][0]["class"] == int(row.argmax())
        assert p["top_k"][0]["label"] == f"class{row.argmax()}"
        assert p["top_k"][0]["probability"] == pytest.approx(float(row.max()), abs=1e-6)
    assert doc["device"] == "cpu" and "auto" in doc["device_reason"]


def test_predict_table_and_exit_code_zero_when_all_succeed(model_alone, tmp_path):
    Image.fromarray(_rgb(32, 32)).save(tmp_path / "ok.png")
    r = CliRunner().invoke(app, ["predict", str(model_alone), str(tmp_path / "ok.png"), "--top-k", "3",
                                 "--device", "cpu", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert "ok.png" in r.stdout and "#3" in r.stdout and "%" in r.stdout and "class" in r.stdout


@pytest.mark.parametrize("content, name, message", [
    (b"\x00garbage" * 10, "bad.tflite", "not a valid TFLite model"),
    (b"\x00garbage" * 10, "bad.onnx", "not a loadable ONNX model"),
    (b"x", "model.pt", "unknown model format"),
])
def test_bad_model_files_are_one_line_errors(tmp_path, content, name, message):
    (tmp_path / name).write_bytes(content)
    Image.fromarray(_rgb(32, 32)).save(tmp_path / "ok.png")
    r = CliRunner().invoke(app, ["predict", str(tmp_path / name), str(tmp_path / "ok.png")])
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output


def _onnx_model(path, in_shape, out_classes=2, layout=None):
    """A tiny ONNX classifier (flatten -> matmul -> softmax) with a given input shape."""
    onnx = pytest.importorskip("onnx", reason="writing a model needs the onnx package (pip install 'edgesmith[train]')")
    from onnx import TensorProto, helper, numpy_helper

    n_in = int(np.prod(in_shape[1:]))
    w = numpy_helper.from_array(np.linspace(-1, 1, n_in * out_classes, dtype=np.float32)
                                .reshape(n_in, out_classes) / n_in, "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["z"]),
         helper.make_node("Softmax", ["z"], ["y"], axis=-1)], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [in_shape[0], out_classes])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.onnx
def test_a_model_whose_input_is_not_an_image_is_refused(tmp_path):
    path = _onnx_model(tmp_path / "vector.onnx", ["N", 10])
    with pytest.raises(EdgesmithError, match="not an image tensor"):
        load(path)


@pytest.mark.onnx
def test_a_fixed_batch_model_takes_any_n(tmp_path):
    path = _onnx_model(tmp_path / "fixed.onnx", [1, 4, 4, 3])
    runner = load(path, threads=1)
    x = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    probs = runner.predict(x)
    assert probs.shape == (5, 2) and runner.labels is None
    np.testing.assert_allclose(probs, np.concatenate([runner.predict(x[i:i + 1]) for i in range(5)]), atol=1e-6)


def test_help_reflows_docstring_paragraphs_and_shows_placeholders():
    """Docstrings are hard-wrapped at 100 columns; help joins their lines to the terminal width,
    and <placeholders> in option help survive (markdown mode would drop them as HTML tags)."""
    r = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "converted to the model's channels (alpha composited over white) and resized" in r.output
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "runs/<model>-<timestamp>" in r.output and "train/<class>/" in r.output
