"""``edgesmith predict --format csv|jsonl|json`` for scripts, and ``predict RUN IMG`` choosing the run's file."""
import csv
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import FIXTURE_MODELS
from PIL import Image
from typer.testing import CliRunner

from edgesmith.cli import app

MODEL = str(FIXTURE_MODELS / "model_int8.tflite")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three images, two with awkward names (a space, a comma), and one file that is not an image."""
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    names = ["my cat photo.jpg", "a,b.png", "plain.png"]
    for n in names:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / n)
    (d / "broken.jpg").write_bytes(b"not an image")
    return d, names


def _invoke(*args):
    return CliRunner().invoke(app, ["predict", *args])


def test_jsonl_is_one_object_per_image_line_by_line(photos):
    d, names = photos
    r = _invoke(MODEL, str(d), "--format", "jsonl", "-k", "2")
    assert r.exit_code == 1  # the broken file
    lines = r.stdout.splitlines()
    objs = [json.loads(line) for line in lines]  # every line parses alone
    good = [o for o in objs if "top_k" in o]
    assert sorted(o["path"].rsplit("/", 1)[1] for o in good) == sorted(names)
    assert all(len(o["top_k"]) == 2 and o["top_k"][0]["probability"] >= o["top_k"][1]["probability"] for o in good)
    assert [o["path"].endswith("broken.jpg") for o in objs if "error" in o] == [True]
    if shutil.which("jq"):  # what a shell script would do
        jq = subprocess.run(["jq", "-r", "select(.top_k) | .top_k[0].label"], input=r.stdout, text=True,
                            capture_output=True, check=True)
        assert jq.stdout.splitlines() == [o["top_k"][0]["label"] for o in good]


def test_csv_keeps_paths_with_spaces_and_commas(photos):
    d, names = photos
    r = _invoke(MODEL, *(str(d / n) for n in names), "--format", "csv", "-k", "3")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["path"] for row in rows] == [str(d / n) for n in names]
    assert all(row["label_1"] and 0 <= float(row["probability_1"]) <= 1 for row in rows)
    assert list(rows[0]) == ["path"] + [f"{f}_{i}" for i in (1, 2, 3) for f in ("label", "class", "probability")]


def test_json_is_one_document_and_json_is_a_flag(photos):
    d, names = photos
    r = _invoke(MODEL, str(d / names[0]), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [p["path"] for p in doc["predictions"]] == [str(d / names[0])]
    help_text = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "120"}).output
    (line,) = [x for x in help_text.splitlines() if "--json" in x]
    assert "<bool>" not in line  # shown as a flag, so nobody types `--json true`


def test_a_run_directory_predicts_with_its_int8_tflite_and_says_so(tiny_run, photos):
    d, names = photos
    r = _invoke(str(tiny_run.root), str(d / names[2]), "--format", "jsonl")
    assert r.exit_code == 0, r.output
    assert "model_int8.tflite: the int8 TFLite file" in r.stderr
    (obj,) = [json.loads(line) for line in r.stdout.splitlines()]
    alone = json.loads(_invoke(MODEL, str(d / names[2]), "--format", "jsonl").stdout)
    assert obj["top_k"] == alone["top_k"]  # the same file as the fixture's int8 TFLite
