"""One decoder: training (the class-folder reader) and serving (load_image) give the same pixels."""
import numpy as np
import pytest
from edgesmith.runtime.images import load_image
from PIL import Image

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import DataError
from edgesmith.core.images import decode_image

ORIENTATION = 0x0112


def _alpha_png(path):
    """32x32: left half opaque red, top-right clear black, bottom-right half-transparent blue."""
    a = np.zeros((32, 32, 4), np.uint8)
    a[:, :16] = (255, 0, 0, 255)
    a[16:, 16:] = (0, 0, 255, 128)
    Image.fromarray(a, "RGBA").save(path)


def _cmyk_jpeg(path):
    """40x24 CMYK: no ink (white) with a full-cyan block in the top-left 8x8."""
    a = np.zeros((24, 40, 4), np.uint8)
    a[:8, :8] = (255, 0, 0, 0)
    Image.fromarray(a, "CMYK").save(path, quality=95)


def _rotated_jpeg(path, orientation):
    """Stored 40 wide x 24 high, mid-gray with a black 8x8 block at the stored top-left."""
    a = np.full((24, 40, 3), 128, np.uint8)
    a[:8, :8] = 0
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(a).save(path, quality=95, exif=exif)


CASES = {"alpha.png": _alpha_png, "cmyk.jpg": _cmyk_jpeg,
         "rot6.jpg": lambda p: _rotated_jpeg(p, 6), "rot8.jpg": lambda p: _rotated_jpeg(p, 8)}


def _train_and_serve(tmp_path, name):
    """Decode ``name`` through a class-folder dataset and through load_image at its size."""
    root = tmp_path / "data"
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "b").mkdir()
    image = root / "train" / "a" / name
    CASES[name](image)
    CASES[name](root / "train" / "b" / name)  # a second class, same size
    split = load_split(DataSpec(str(root)), "train")
    trained = split.images[split.labels == 0][0]
    return trained, load_image(image, trained.shape)


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_and_serving_decode_identically(tmp_path, name):
    trained, served = _train_and_serve(tmp_path, name)
    assert trained.dtype == served.dtype == np.uint8 and trained.shape[2] == 3
    np.testing.assert_array_equal(trained, served)


def test_transparency_is_composited_over_white(tmp_path):
    x, _ = _train_and_serve(tmp_path, "alpha.png")
    assert (x[:, :16] == (255, 0, 0)).all()
    assert (x[:16, 16:] == 255).all()  # clear pixels are white, not their black RGB
    np.testing.assert_array_equal(x[16:, 16:], np.broadcast_to((127, 127, 255), (16, 16, 3)))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    x = _train_and_serve(tmp_path, "cmyk.jpg")[0].astype(int)
    assert x.shape == (24, 40, 3)
    assert np.abs(x[1:7, 1:7] - (0, 255, 255)).max() <= 12  # cyan
    assert (x[12:, 12:] >= 245).all()  # no ink is white


@pytest.mark.parametrize("name, marker", [("rot6.jpg", "top-right"), ("rot8.jpg", "bottom-left")])
def test_exif_orientation_is_applied(tmp_path, name, marker):
    x, _ = _train_and_serve(tmp_path, name)
    assert x.shape == (40, 24, 3)  # stored 40x24, shown 24 wide x 40 high
    dark = x.mean(axis=2) < 64
    rows, cols = np.nonzero(dark)
    corner = ("top" if rows.max() < 12 else "bottom" if rows.min() >= 28 else "?") + "-" + \
             ("left" if cols.max() < 12 else "right" if cols.min() >= 12 else "?")
    assert corner == marker
    assert abs(int(dark.sum()) - 64) <= 8  # the 8x8 block, give or take JPEG edges


def test_decoder_resizes_only_when_asked_and_checks_channels(tmp_path):
    _rotated_jpeg(tmp_path / "r.jpg", 6)
    assert decode_image(tmp_path / "r.jpg").shape == (40, 24, 3)
    assert decode_image(tmp_path / "r.jpg", 1, (10, 6)).shape == (10, 6, 1)
    assert decode_image(tmp_path / "r.jpg", 4).shape == (40, 24, 4)
    with pytest.raises(DataError, match="2 input channels"):
        decode_image(tmp_path / "r.jpg", 2)


def test_big_rotated_jpeg_is_not_drafted_below_the_target(tmp_path):
    # stored 800 wide x 200 high with 1-pixel horizontal stripes; shown rotated, 200 wide x
    # 800 high. For a 100x400 (HxW) target the draft must keep all 200 stripes: a draft
    # sized for the stored orientation would halve them to gray before the resize.
    a = np.zeros((200, 800, 3), np.uint8)
    a[::2] = 255
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(a).save(tmp_path / "big.jpg", quality=95, exif=exif)
    x = decode_image(tmp_path / "big.jpg", 3, (100, 400))
    with Image.open(tmp_path / "big.jpg") as im:
        full = im.transpose(Image.Transpose.ROTATE_270).resize((400, 100), Image.Resampling.BILINEAR)
    assert x.shape == (100, 400, 3)
    assert np.abs(x.astype(int) - np.asarray(full)).mean() < 4
    assert x.std() > 40  # the stripes survived
