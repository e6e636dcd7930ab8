"""The data options of an import (`export MODEL --data ...`, `resolve_run`): a folder of mixed image
sizes gets the model's input size, --image-size wins, the split and data report are written, and the
options are refused with a run directory. One untrained 3-class model, a generated messy folder."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import RunDir, load_manifest
from edgesmith.importer import resolve_run
from edgesmith.tfshim import keras

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_messy_folder.py"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """``(messy ROOT/<class>/ folder of mixed sizes, a 40x40-input 3-class .keras file)``."""
    d = tmp_path_factory.mktemp("import-data")
    spec = importlib.util.spec_from_file_location("make_messy_folder", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.make_messy_folder(d / "photos", per_class=10, seed=1)
    keras.utils.set_random_seed(0)
    inp = keras.Input((40, 40, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x)).save(d / "m.keras")
    return d / "photos", d / "m.keras"


def test_mixed_sizes_take_the_models_input_size_and_the_split_is_recorded(setup, tmp_path, capsys):
    root, model = setup
    run, imported = resolve_run(model, data=str(root), out=tmp_path / "run", test_split=0.5, seed=3)
    assert imported
    dataset = load_manifest(run)["dataset"]
    assert dataset["image_shape"] == [40, 40, 3] and dataset["image_size"] == [40, 40]
    assert dataset["test_split"] == 0.5 and dataset["split_seed"] == 3
    assert "40x40, the input size of m.keras" in capsys.readouterr().err
    split = json.loads((run.root / "split.json").read_text())
    report = json.loads((run.root / "data_report.json").read_text())
    n_test = len(split["splits"]["test"]["files"])
    assert n_test == json.loads(run.metrics.read_text())["n_test"]
    n_train = len(split["splits"]["train"]["files"])
    assert n_test >= 0.4 * (n_train + n_test)  # half of each class held out (--test-split 0.5), not 0.2
    assert report["splits"].keys() == {"train", "test"} and any(r["skipped"] for r in report["splits"].values())


def test_an_explicit_image_size_and_resize_win(setup, tmp_path):
    root, model = setup
    run, _ = resolve_run(model, data=str(root), out=tmp_path / "run", image_size=(24, 24), resize="crop")
    dataset = load_manifest(run)["dataset"]
    assert dataset["image_shape"] == [24, 24, 3] and dataset["resize"] == "crop"
    source = load_manifest(run)["model"]["source"]
    assert source["resize"]["to"] == [40, 40]  # the wrapper resizes 24x24 up to the model's input
    with pytest.raises(ConfigError, match="image options"):
        resolve_run(run.root, image_size=(32, 32))


def test_the_cli_passes_the_data_options_to_the_import(setup, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edgesmith.cli import app

    export_cmd = sys.modules["edgesmith.cli.export_cmd"]  # the package's `export_cmd` name is the command
    root, model = setup
    monkeypatch.setattr(export_cmd, "run_export", lambda run_dir, **kw: [])
    r = CliRunner().invoke(app, ["export", str(model), "--data", str(root), "--image-size", "20x28",
                                 "--resize", "pad", "--strict-data", "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "--strict-data" in r.output and not (tmp_path / "run").exists()  # a bad file refused
    r = CliRunner().invoke(app, ["export", str(model), "--data", str(root), "--image-size", "20x28",
                                 "--resize", "pad", "--test-split", "0.3", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    dataset = load_manifest(RunDir(tmp_path / "run"))["dataset"]
    assert (dataset["image_size"], dataset["resize"], dataset["test_split"]) == ([20, 28], "pad", 0.3)
