"""The resize policy: one decoder, the same pixels in training and in `predict` (TF-free)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.images import RESIZE_MODES, decode_image
from edgesmith.runtime import load_image
from edgesmith.runtime.base import InputSpec
from edgesmith.runtime.modelmeta import read_tflite_metadata, resize_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def _banded(w: int = 640, h: int = 480) -> Image.Image:
    """Red outer quarters left and right, green middle half: what each mode keeps is visible."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 4] = (255, 0, 0)
    a[:, w // 4: 3 * w // 4] = (0, 255, 0)
    a[:, 3 * w // 4:] = (255, 0, 0)
    return Image.fromarray(a)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "phone.jpg"
    _banded().save(path, quality=95)
    return path


def test_each_mode_keeps_what_it_says(photo):
    squash = decode_image(photo, 3, (32, 32), "squash")
    crop = decode_image(photo, 3, (32, 32), "crop")
    pad = decode_image(photo, 3, (32, 32), "pad")
    assert squash.shape == crop.shape == pad.shape == (32, 32, 3)
    # squash keeps the red quarters (8 px each side); crop takes the centre 480x480: green edges...
    assert squash[16, 2, 0] > 200 and squash[16, 16, 1] > 200
    assert crop[16, 2, 0] > 200 and crop[16, 6, 1] > 200  # 80 of 480 px of red: ~5 px at 32
    # ...pad keeps all 640 px across, 24 rows high, with 4-row black bars above and below
    assert (pad[:3] == 0).all() and (pad[-3:] == 0).all() and pad[16, 1, 0] > 200
    assert not np.array_equal(squash, crop) and not np.array_equal(squash, pad)


def test_squash_is_todays_pixels(photo):
    with Image.open(photo) as im:
        im.draft("RGB", (32, 32))
        expected = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(decode_image(photo, 3, (32, 32)), expected)
    np.testing.assert_array_equal(decode_image(photo, 3, (32, 32), "squash"), expected)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_training_and_predict_see_the_same_pixels(tmp_path, photo, mode):
    root = tmp_path / "photos"
    for c in ("bands", "other"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            shutil.copy(photo, root / c / f"{i}.jpg") if c == "bands" else \
                Image.new("RGB", (300 + i, 200), (i, 50, 90)).save(root / c / f"{i}.png")
    spec = DataSpec(str(root), image_size=(48, 40), resize=mode, test_split=0.4)
    train = load_split(spec, "train")
    trained = train.images[list(train.files).index(next(f for f in train.files if f.parent.name == "bands"))]
    served = load_image(photo, InputSpec(shape=(48, 40, 3), dtype="float32", resize=mode))
    np.testing.assert_array_equal(trained, served)


def test_the_model_file_carries_the_policy_to_load_image(tmp_path, photo):
    from edgesmith.export.embed import embed_metadata
    from edgesmith.runtime import load

    path = tmp_path / "model.tflite"
    shutil.copy(FIXTURES / "model_fp32.tflite", path)
    assert resize_of(read_tflite_metadata(path)) == "squash"  # files made before the field: squash
    embed_metadata(path, labels=[f"c{i}" for i in range(10)], resize="pad")
    assert read_tflite_metadata(path)["input"]["resize"] == "pad"
    runner = load(path)
    assert runner.input_spec.resize == "pad"
    h, w, c = runner.input_spec.shape
    np.testing.assert_array_equal(load_image(photo, runner.input_spec), decode_image(photo, c, (h, w), "pad"))
    assert resize_of({"input": {"resize": "zoom"}}) == "squash"
