"""`edgesmith data inspect` and the data options of train/pipeline (TF-free: nothing trains here)."""
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.cli.train_cmd import build_config

runner = CliRunner()
TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_messy_folder.py"


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_messy_folder", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    root = tmp_path_factory.mktemp("inspect") / "photos"
    return root, tool.make_messy_folder(root, per_class=10, seed=1)


def test_inspect_json_counts_sizes_formats_skipped_duplicates(messy):
    root, info = messy
    r = runner.invoke(app, ["data", "inspect", str(root), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["layout"] == "flat" and report["classes"] == ["circles", "hstripes", "vstripes"]
    assert report["images"] == 31 and report["files"] == 38  # 30 + duplicate readable; 5 junk, 2 bad
    assert sum(report["splits"]["test"]["class_counts"].values()) == report["splits"]["test"]["images"] == 6
    assert sum(b["images"] for b in report["sizes"]["histogram"]) == 31
    assert set(report["formats"]) == {"JPEG", "PNG", "WEBP"}
    assert set(report["suffixes"]) == {".jpg", ".JPG", ".jpeg", ".png", ".webp"}
    reasons = {x["file"]: x["reason"] for x in report["skipped"]}
    assert set(reasons) == {".DS_Store", "circles/.DS_Store", "circles/.thumbnails", "circles/notes.txt",
                            "hstripes/Thumbs.db", "hstripes/empty.png", "circles/IMG_9999.jpg"}
    assert "truncated" in reasons["circles/IMG_9999.jpg"]
    dup = sorted(Path(p).relative_to(root).as_posix() for p in info["duplicate"])
    assert [sorted(d["files"]) for d in report["leaks"]] == [dup]
    counts = report["splits"]["train"]["class_counts"].values()
    assert report["imbalance"] == round(max(counts) / min(counts), 2) > 1  # the duplicate makes vstripes larger


def test_inspect_warns_about_a_train_test_leak_in_words(messy):
    root, _ = messy
    r = runner.invoke(app, ["data", "inspect", str(root)])
    assert r.exit_code == 0, r.output
    assert "images per class" in r.output and "skipped: 7 of 38 files" in r.output
    assert "train/test leak" in r.output and "hstripes/Thumbs.db: not an image file (.db)" in r.output


def test_inspect_of_a_missing_folder_is_one_line(tmp_path):
    r = runner.invoke(app, ["data", "inspect", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output


def test_the_data_options_reach_the_data_spec(tmp_path):
    config = build_config(str(tmp_path), seed=4, image_size="48x64", resize="crop", test_split=0.25,
                          strict_data=True, model="cnn")
    d = config.data
    assert (d.image_size, d.resize, d.test_split, d.split_seed, d.strict) == ((48, 64), "crop", 0.25, 4, True)
    assert build_config(str(tmp_path), image_size="96").data.image_size == (96, 96)


def test_a_bad_image_size_is_refused_before_training(tmp_path):
    r = runner.invoke(app, ["train", "--data", str(tmp_path), "--image-size", "0x5", "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "--image-size" in r.output and not (tmp_path / "run").exists()


def test_mixed_sizes_without_an_image_size_get_the_models_native_size(messy, tmp_path):
    root, _ = messy
    assert build_config(str(root), model="lenet5").data.image_size == (28, 28)
    assert build_config(str(root), model="resnet8").data.image_size == (32, 32)
    assert build_config(str(root), model="resnet8", image_size="64").data.image_size == (64, 64)
    same = tmp_path / "same"
    for c in ("a", "b"):
        (same / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30)).save(same / c / f"{i}.png")
    assert build_config(str(same), model="resnet8").data.image_size is None  # they agree: their own size
