import numpy as np
import pytest
from conftest import write_image_folders
from PIL import Image

from edgesmith.core.data import DataSpec, load_dataset, load_split, synthetic_split
from edgesmith.core.errors import DataError


def test_synthetic_is_deterministic_balanced_uint8():
    a = synthetic_split("train", 200, seed=3)
    b = synthetic_split("train", 200, seed=3)
    assert a.images.shape == (200, 32, 32, 3) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    assert np.bincount(a.labels).tolist() == [20] * 10
    assert not np.array_equal(synthetic_split("test", 200, seed=3).images, a.images)


def test_folder_reads_classes_in_sorted_order(tmp_path):
    root = write_image_folders(tmp_path / "d", classes=("b_dog", "a_cat"), fmt="jpg")
    train, test = load_dataset(DataSpec(str(root)))
    assert train.class_names == ("a_cat", "b_dog")
    assert len(train) == 12 and len(test) == 6
    assert train.images.shape[1:] == (32, 32, 3)
    # colours were written per class: a_cat is class index 1 in write order -> brighter
    cat = train.images[train.labels == 0].mean()
    dog = train.images[train.labels == 1].mean()
    assert cat > dog


def test_folder_converts_gray_and_rgba_to_rgb(tmp_path):
    root = write_image_folders(tmp_path / "d")
    Image.new("L", (32, 32), 77).save(root / "train" / "cat" / "gray.png")
    Image.new("RGBA", (32, 32), (1, 2, 3, 4)).save(root / "train" / "cat" / "rgba.png")
    train = load_split(DataSpec(str(root)), "train")
    assert train.images.shape == (20, 32, 32, 3)
    assert (train.images == 77).all(axis=(1, 2, 3)).any()  # gray -> R = G = B
    assert (train.images >= 250).all(axis=(1, 2, 3)).any()  # nearly clear -> nearly white


def test_limit_is_class_balanced_and_seeded(tmp_path):
    root = write_image_folders(tmp_path / "d", per_class=(6, 3))
    s1 = load_split(DataSpec(str(root), limit_train=6, seed=1), "train")
    s2 = load_split(DataSpec(str(root), limit_train=6, seed=1), "train")
    assert np.bincount(s1.labels).tolist() == [2, 2, 2]
    np.testing.assert_array_equal(s1.images, s2.images)


def test_decoded_cache_is_reused_and_invalidated(tmp_path):
    root = write_image_folders(tmp_path / "d")
    first = load_split(DataSpec(str(root)), "test")
    again = load_split(DataSpec(str(root)), "test")
    np.testing.assert_array_equal(first.images, again.images)
    Image.new("RGB", (32, 32), (255, 0, 0)).save(root / "test" / "cat" / "0000.png")
    changed = load_split(DataSpec(str(root)), "test")
    assert not np.array_equal(first.images, changed.images)


def test_decoded_cache_is_keyed_by_the_decoder_version(tmp_path, monkeypatch):
    from edgesmith.core import data

    monkeypatch.setenv("EDGESMITH_CACHE", str(tmp_path / "cache"))
    root = write_image_folders(tmp_path / "d")
    load_split(DataSpec(str(root)), "test")
    load_split(DataSpec(str(root)), "test")
    assert len(list((tmp_path / "cache").glob("folder-*.npz"))) == 1
    monkeypatch.setattr(data, "DECODER_VERSION", data.DECODER_VERSION + 1)
    load_split(DataSpec(str(root)), "test")
    assert len(list((tmp_path / "cache").glob("folder-*.npz"))) == 2


@pytest.mark.parametrize("make, message", [
    (lambda r: None, "does not exist"),
    (lambda r: r.mkdir(), "contains no images in class folders"),
    (lambda r: (r / "train" / "cat").mkdir(parents=True), "has train/ but no test/"),
    (lambda r: (r / "train" / "cat").mkdir(parents=True), "contains no images"),
])
def test_bad_directories_raise_one_line_errors(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=message) as e:
        load_split(DataSpec(str(root)), "test" if "test/" in message else "train")
    assert "\n" not in str(e.value)


def test_mismatched_sizes_and_single_class_are_refused(tmp_path):
    root = write_image_folders(tmp_path / "d")
    Image.new("RGB", (28, 28)).save(root / "train" / "dog" / "odd.png")
    with pytest.raises(DataError, match="differ in size"):
        load_split(DataSpec(str(root)), "train")
    one = write_image_folders(tmp_path / "one", classes=("only",))
    with pytest.raises(DataError, match="at least 2 classes"):
        load_split(DataSpec(str(one)), "train")


def test_corrupt_image_is_skipped_and_named_or_refused_when_strict(tmp_path, capsys):
    root = write_image_folders(tmp_path / "d")
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    train = load_split(DataSpec(str(root)), "train")
    assert len(train) == 18 and [(f.name, why) for f, why in train.skipped] == [
        ("broken.jpg", "not an image Pillow can read")]
    assert "broken.jpg: not an image Pillow can read" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"broken.jpg.*\(DataSpec.strict; "):
        load_split(DataSpec(str(root), strict=True), "train")


def test_split_classes_must_match(tmp_path):
    root = write_image_folders(tmp_path / "d")
    (root / "test" / "frog").rename(root / "test" / "toad")
    with pytest.raises(DataError, match="differ from test classes"):
        load_dataset(DataSpec(str(root)))


def test_non_positive_limit_is_refused():
    with pytest.raises(DataError, match="^limit_train must be positive"):
        DataSpec("synthetic", limit_train=0)


def test_folder_sources_are_recorded_absolutely(tmp_path, monkeypatch):
    root = write_image_folders(tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    spec = DataSpec("d")
    assert spec.source == str(root) and DataSpec.from_dict(spec.to_dict()) == spec
    monkeypatch.chdir("/")
    assert len(load_split(spec, "test")) == 9
    assert DataSpec("synthetic").source == "synthetic"
