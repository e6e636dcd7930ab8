"""Class folders the way people keep them: any layout, nested, with junk and bad files (TF-free).

The messy fixture comes from ``tools/make_messy_folder.py`` on Pillow-drawn patterns: 3 classes
x 10 images of random sizes 48-360 px in five suffixes, some nested, plus .DS_Store, Thumbs.db,
notes.txt, a hidden folder, a truncated JPEG, a zero-byte PNG and a duplicate across splits.
"""
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image_folders
from PIL import Image

from edgesmith.core.data import (DataSpec, FileSplit, has_split, list_split, load_dataset, load_split,
                                 parse_image_size)
from edgesmith.core.datareport import check_split, write_data_report
from edgesmith.core.errors import DataError

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_messy_folder.py"


def _tool():
    spec = importlib.util.spec_from_file_location("make_messy_folder", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """``(root, info)``: the generated messy folder and what the tool says it wrote."""
    root = tmp_path_factory.mktemp("messy") / "photos"
    return root, _tool().make_messy_folder(root, per_class=10, seed=0)


def test_the_fixture_has_every_case(messy):
    root, info = messy
    assert info["formats"] == {".jpg": 6, ".JPG": 6, ".jpeg": 6, ".png": 6, ".webp": 6}
    assert info["nested"] and all("/more/" in p for p in info["nested"])
    assert Path(info["bad"][1]).stat().st_size == 0
    assert not (root / "train").exists()
    sizes = {Image.open(p).size for p in root.rglob("img_*")}
    assert len(sizes) > 20 and min(min(s) for s in sizes) >= 48 and max(max(s) for s in sizes) <= 360


def test_a_flat_folder_is_split_stratified_seeded_and_disjoint(messy, capsys):
    root, info = messy
    spec = DataSpec(str(root), image_size=(32, 32))
    train, test = list_split(spec, "train"), list_split(spec, "test")
    assert isinstance(train, FileSplit) and train.class_names == ("circles", "hstripes", "vstripes")
    assert not set(train.files) & set(test.files)
    # 10 images per class (+ the truncated JPEG in circles, the duplicate in vstripes): 20% each
    assert np.bincount(test.labels).tolist() == [2, 2, 2]
    assert len(train) + len(test) == 32  # empty.png is left out at listing, the truncated JPEG only when decoded
    again = list_split(DataSpec(str(root), image_size=(32, 32), seed=7), "test")  # another subset seed
    assert set(again.files) == set(test.files)  # ...same split: calibration cannot see test images
    other = list_split(DataSpec(str(root), split_seed=1), "test")
    assert set(other.files) != set(test.files)
    wider = list_split(DataSpec(str(root), test_split=0.5), "test")
    assert np.bincount(wider.labels).tolist() == [6, 5, 6]  # 11, 10, 11 listed
    load_split(spec, "train")
    assert "no train/ folder: holding out 20% of each class" in capsys.readouterr().err


def test_nested_images_are_read_and_junk_is_skipped_and_listed(messy):
    root, info = messy
    spec = DataSpec(str(root), image_size=(32, 32))
    files = set(list_split(spec, "train").files) | set(list_split(spec, "test").files)
    assert {Path(p) for p in info["nested"]} <= files
    skipped = dict(list_split(spec, "train").skipped)
    assert skipped[root / ".DS_Store"] == "not in a class folder"
    assert skipped[root / "circles" / ".DS_Store"] == "hidden file"
    assert skipped[root / "circles" / ".thumbnails"] == "hidden folder"
    assert skipped[root / "hstripes" / "Thumbs.db"] == "not an image file (.db)"
    assert skipped[root / "circles" / "notes.txt"] == "not an image file (.txt)"
    assert skipped[root / "hstripes" / "empty.png"] == "empty file (0 bytes)"


def test_bad_images_are_skipped_named_and_reported_or_refused_when_strict(messy, tmp_path, capsys, monkeypatch):
    from edgesmith.core import data

    monkeypatch.setattr(data, "_REPORTED", set())  # each skipped file is said once per process
    root, info = messy
    spec = DataSpec(str(root), image_size=(28, 28))  # a size no other test loads: decoded here
    train, test = load_dataset(spec)
    truncated = Path(info["bad"][0])
    where = train if truncated in list_split(spec, "train").files else test
    assert truncated in dict(where.skipped) and "truncated" in dict(where.skipped)[truncated]
    assert len(train) + len(test) == 31 and train.images.shape[1:] == (28, 28, 3)
    assert truncated.name in capsys.readouterr().err
    load_split(dataclasses.replace(spec, limit_train=5, seed=7), "train")  # a calibration-like subset...
    assert "skipped" not in capsys.readouterr().err  # ...repeats nothing
    report = write_data_report(spec, tmp_path)
    assert report["summary"] == "skipped: 7 of 38"  # 6 junk/empty + the truncated JPEG, of every file there
    listed = {x["file"]: x["reason"] for s in report["splits"].values() for x in s["skipped"]}
    assert "circles/IMG_9999.jpg" in listed and "hstripes/Thumbs.db" in listed
    assert "IMG_9999.jpg" in (tmp_path / "data_report.md").read_text()
    split = json.loads((tmp_path / "split.json").read_text())
    assert sorted(split["splits"]["test"]["files"]) == sorted(
        f.relative_to(root).as_posix() for f in list_split(spec, "test").files if f != truncated)
    with pytest.raises(DataError, match=r"empty.png: empty file.*\(DataSpec.strict; "):
        load_split(dataclasses.replace(spec, strict=True), "train")


def test_mixed_sizes_need_an_image_size(messy):
    root, _ = messy
    with pytest.raises(DataError, match="differ in size.*; pass image_size H"):
        load_split(DataSpec(str(root)), "test")
    assert load_split(DataSpec(str(root), image_size=(24, 40), resize="pad"), "test").images.shape[1:] == (24, 40, 3)


def test_train_val_test_folders(tmp_path):
    root = write_image_folders(tmp_path / "d")
    assert not has_split(DataSpec(str(root)), "val")
    with pytest.raises(DataError, match="no val"):
        load_split(DataSpec(str(root)), "val")
    (root / "val").mkdir()
    for c in ("cat", "dog", "frog"):
        (root / "val" / c).mkdir()
        Image.new("RGB", (32, 32), (9, 9, 9)).save(root / "val" / c / "v.png")
    spec = DataSpec(str(root))
    assert has_split(spec, "val") and not has_split(DataSpec("synthetic"), "val")
    val = load_split(spec, "val")
    assert len(val) == 3 and val.class_names == ("cat", "dog", "frog") and (val.images == 9).all()
    with pytest.raises(DataError, match="^test_split is for a folder of class folders"):
        list_split(DataSpec(str(root), test_split=0.3), "train")


def test_list_split_reads_headers_only_and_honours_limits(tmp_path, monkeypatch):
    from edgesmith.core import images

    root = write_image_folders(tmp_path / "d", per_class=(6, 3))
    monkeypatch.setattr(images, "decode_image", lambda *a, **k: pytest.fail("decoded"))
    fs = list_split(DataSpec(str(root), limit_train=6), "train")
    assert len(fs) == 6 and np.bincount(fs.labels).tolist() == [2, 2, 2] and fs.channels == 3
    assert fs.labels.dtype == np.int64 and all(isinstance(f, Path) for f in fs.files)
    with pytest.raises(DataError, match="not a folder"):
        list_split(DataSpec("synthetic"), "train")


def test_data_spec_round_trips_and_old_manifests_load():
    spec = DataSpec("synthetic", image_size=(64, 48), resize="crop", split_seed=3, strict=True)
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    old = DataSpec.from_dict({"source": "cifar10", "limit_train": None, "limit_test": 100, "seed": 1})
    assert (old.image_size, old.resize, old.test_split, old.strict) == (None, "squash", None, False)
    assert parse_image_size("64") == (64, 64) and parse_image_size("48x64") == (48, 64)
    for bad in ("0", "x", "64x"):
        with pytest.raises(DataError, match="^image_size must be H or HxW"):
            parse_image_size(bad)
    with pytest.raises(DataError, match="resize"):
        DataSpec("synthetic", resize="stretch")
    with pytest.raises(DataError, match=r"^test_split must be a fraction in \(0, 1\), got 1.0"):
        DataSpec("synthetic", test_split=1.0)


def test_named_sources_resize_by_the_same_rule():
    small = load_split(DataSpec("synthetic", limit_test=20, image_size=(48, 64), resize="pad"), "test")
    assert small.images.shape == (20, 48, 64, 3)
    assert (small.images[:, :, :8] == 0).all()  # letterbox bars: 32x32 -> 48x48 centred in 64 wide


def test_a_folder_changed_after_training_is_refused_by_later_stages(tmp_path):
    root = tmp_path / "flat"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / c / f"{i}.png")
    spec, run = DataSpec(str(root)), tmp_path / "run"
    run.mkdir()
    write_data_report(spec, run)
    check_split(spec, run)  # unchanged: fine
    for i in range(6, 30):
        Image.new("RGB", (8, 8)).save(root / "a" / f"{i}.png")
    with pytest.raises(DataError, match="no longer splits as this run recorded"):
        check_split(spec, run)


def test_the_header_listing_is_cached_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    from edgesmith.core import folders

    monkeypatch.setenv("EDGESMITH_CACHE", str(tmp_path / "cache"))
    root = write_image_folders(tmp_path / "d")
    first = list_split(DataSpec(str(root)), "train")
    assert len(list((tmp_path / "cache").glob("headers-*.json"))) == 1
    monkeypatch.setattr(folders, "_header", lambda f: pytest.fail("read a header again"))
    assert list_split(DataSpec(str(root)), "train").files == first.files  # from the cache
    monkeypatch.undo()
    monkeypatch.setenv("EDGESMITH_CACHE", str(tmp_path / "cache"))
    first.files[0].write_bytes(b"now garbage")
    assert dict(list_split(DataSpec(str(root)), "train").skipped) == {first.files[0]: "not an image Pillow can read"}
