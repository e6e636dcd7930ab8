"""edgesmith tune: the search under a budget, pruning, resume, the reports and the best command line.

Studies are tiny (a cnn on 300 synthetic images, 2 epochs, a few trials); one study is shared by
the tests that only read it.
"""
import csv
import json
import shlex
import shutil
from dataclasses import replace
from types import SimpleNamespace

import optuna
import pytest
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError
from edgesmith.optimize import tune as tn
from edgesmith.optimize import tune_report
from edgesmith.train.config import TrainConfig
from edgesmith.core.durations import parse_budget
from edgesmith.optimize.tune import TuneConfig, load_tune_config, tune

runner = CliRunner()
BASE = TrainConfig(DataSpec("synthetic", limit_train=300, limit_test=60), model="cnn", epochs=2, val_split=0.2)


def _config(**kw) -> TuneConfig:
    return TuneConfig(**{"base": BASE, "search": ("lr", "batch_size", "augment"), "budget_s": 600,
                         "pruner": "none", **kw})


def _one_line_error(result, match: str):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.output


def _leftovers(root):
    return [p for p in root.rglob("*") if p.name.endswith(".partial") or p.name == "trials" or ".tmp" in p.name]


TEST_READS: list[str] = []  # the runs the `study` fixture scored on the test split


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Three trials, no pruner: the baseline and two sampled ones."""
    import edgesmith.train.loop as loop

    out = tmp_path_factory.mktemp("tune") / "study"
    real = loop._evaluate
    with pytest.MonkeyPatch.context() as mp:  # counts every prediction pass over a test split
        mp.setattr(loop, "_evaluate", lambda model, test, **kw: TEST_READS.append(model.name) or real(model, test, **kw))
        result = tune(_config(max_trials=3), out, log=lambda line: None)
    return out, result


# --- config and input -------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("90s", 90), ("20m", 1200), ("1h", 3600), ("1h30m", 5400),
                                           ("1.5m", 90)])
def test_budget_strings_parse_to_seconds(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["20", "20x", "m", "", "0m", "-5m"])
def test_bad_budget_strings_are_refused(text):
    with pytest.raises(ConfigError, match="^budget_s "):
        parse_budget(text)


@pytest.mark.parametrize("kw, match", [
    ({"search": ("lr", "momentum")}, "unknown search name 'momentum'"),
    ({"search": ()}, "at least one"),
    ({"search": ("width",)}, "applies to mobilenetv2 only"),
    ({"search": ("lr", "lr")}, "twice"),
    ({"base": replace(BASE, val_split=0.0)}, "val_split must be > 0"),
    ({"objective": "fp16"}, "unknown objective"),
    ({"pruner": "median"}, "unknown pruner"),
    ({"max_trials": 0}, "^max_trials must be >= 1"),
])
def test_bad_tune_configs_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        _config(**kw)


def test_cli_bad_search_name_is_a_one_line_error(tmp_path):
    r = runner.invoke(app, ["tune", "--data", "synthetic", "--search", "lr,colour", "--out", str(tmp_path / "t")])
    _one_line_error(r, "unknown --search name 'colour'")
    assert not (tmp_path / "t").exists()


def test_cli_bad_budget_is_a_one_line_error(tmp_path):
    _one_line_error(runner.invoke(app, ["tune", "--data", "synthetic", "--budget", "soon"]), "--budget")


def test_a_batch_size_without_lr_scales_the_learning_rate():
    config = _config(search=("batch_size",))
    assert config.trial_config({"batch_size": 256}).learning_rate == pytest.approx(2 * BASE.learning_rate)
    assert config.trial_config({"batch_size": 256, "learning_rate": 1e-3}).learning_rate == 1e-3


def test_a_preset_base_keeps_its_recipe_but_scores_on_a_hold_out(monkeypatch):
    from edgesmith.cli.tune_cmd import base_config

    base = base_config("synthetic", explicit={"epochs": 10, "val_split": 0.1}, preset="fast", limit_train=200)
    assert (base.model, base.epochs, base.optimizer, base.batch_size, base.val_split) == ("resnet8", 10, "sgd", 512, 0.1)
    assert base.learning_rate == pytest.approx(0.3 * 512 / 128) and base.low_res_epochs == 6
    # its trial's command line spells out every non-default field, and `train` parses it back exactly
    trial = _config(base=base, search=("lr",)).trial_config({"learning_rate": 0.5})
    command = tune_report.train_command(trial)
    assert "--preset" not in command and "--optimizer sgd" in command and "--low-res-epochs 6" in command
    import edgesmith.train

    built = []
    monkeypatch.setattr(edgesmith.train, "train", lambda config, *a, **k: built.append(config))
    r = runner.invoke(app, shlex.split(command)[1:])
    assert r.exit_code == 0, r.output
    assert built == [replace(trial, tensorboard=True)]


# --- a study ----------------------------------------------------------------------------

def test_study_writes_every_report_and_keeps_only_the_best_run(study):
    out, result = study
    assert result.ran == 3 and result.stopped == "trials"
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["trial"] for r in rows] == ["0", "1", "2"] and all(r["state"] == "complete" for r in rows)
    assert rows[0]["note"] == "baseline" and rows[0]["learning_rate"] == str(BASE.learning_rate)
    assert {"batch_size", "augment", "objective", "epochs", "seconds"} <= set(rows[0])
    assert all(r["epochs"] == "2" and 0 <= float(r["objective"]) <= 1 for r in rows)
    assert (out / "trials.md").read_text().count("\n") == 2 + 3
    assert (out / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = json.loads((out / "best.json").read_text())
    assert best["value"] == max(float(r["objective"]) for r in rows)
    record = json.loads((out / "tune.json").read_text())
    assert record["study"]["search"] == ["lr", "batch_size", "augment"] and len(record["sessions"]) == 1
    assert {"started", "ended", "budget_s", "versions"} <= set(record["sessions"][0])
    assert record["best"]["trial"] == best["trial"]
    # the best trial's run is kept (a complete run directory); no other trial leaves anything behind
    assert (out / "best-run" / "manifest.json").is_file()
    assert json.loads((out / "best-run" / "config.json").read_text())["batch_size"] == best["values"]["batch_size"]
    assert not _leftovers(out)


def test_trials_never_read_the_test_split_and_the_kept_run_is_scored_once(study):
    """Three trials trained, one test pass: the kept run's, after the search; its metrics.json, per-class
    report and manifest hold the test figures as if `train` had written them."""
    out, result = study
    assert len(TEST_READS) == 1
    metrics = json.loads((out / "best-run" / "metrics.json").read_text())
    assert 0 <= metrics["top1"] <= 1 and metrics["n_test"] == 60 and "test" not in metrics
    assert sum(r["support"] for r in metrics["per_class"]) == 60 and (out / "best-run" / "per_class.md").is_file()
    manifest = json.loads((out / "best-run" / "manifest.json").read_text())
    assert manifest["stages"]["train"]["metrics"]["top1"] == metrics["top1"] and manifest["dataset"]["n_test"] == 60
    best = json.loads((out / "best.json").read_text())
    assert best["test_top1"] == metrics["top1"] == result.best["test_top1"] and best["n_test"] == 60


def test_a_kept_run_that_cannot_be_scored_leaves_the_search_intact(tmp_path, monkeypatch):
    import edgesmith.train.test_eval as test_eval
    from edgesmith.core.errors import DataError

    def moved(run_dir):
        raise DataError("dataset folder /data/gone does not exist")

    monkeypatch.setattr(test_eval, "evaluate_test", moved)
    lines = []
    result = tune(_config(base=replace(BASE, epochs=1), max_trials=1), tmp_path / "t", log=lines.append)
    assert result.best["value"] > 0 and result.best["test_top1"] is None
    assert any(line.startswith("note: best-run was not scored on the test split (dataset folder") for line in lines)
    assert (tmp_path / "t" / "best.json").is_file() and (tmp_path / "t" / "best-run" / "model.keras").exists()


def test_best_command_line_builds_the_best_config(study, monkeypatch):
    out, _ = study
    best = json.loads((out / "best.json").read_text())
    built = []
    import edgesmith.train

    monkeypatch.setattr(edgesmith.train, "train", lambda config, *a, **k: built.append(config))  # returns None
    argv = shlex.split(best["command"])
    assert argv[:2] == ["edgesmith", "train"]
    r = runner.invoke(app, argv[1:])
    assert r.exit_code == 0, r.output
    expected = TrainConfig.from_dict(best["train_config"])
    assert built == [expected]
    for field, value in best["values"].items():
        assert getattr(built[0], field) == value
    assert built[0].val_split == BASE.val_split and built[0].data == BASE.data and built[0].epochs == BASE.epochs


def test_resume_continues_the_same_study(study, tmp_path):
    src, first = study
    out = tmp_path / "study"
    shutil.copytree(src, out)
    r = runner.invoke(app, ["tune", "--resume", str(out), "--budget", "10m", "--trials", "2"])
    assert r.exit_code == 0, r.output
    assert "edgesmith train --data synthetic" in r.output.replace("\n", "")
    rows = tune_report.trial_rows(optuna.load_study(study_name=tn.STUDY_NAME, storage=tn.journal(out)))
    assert len(rows) == 5 and rows[:3] == first.rows  # earlier trials kept as they were
    assert [r["note"] for r in rows].count("baseline") == 1
    assert len(json.loads((out / "tune.json").read_text())["sessions"]) == 2
    # running again on --out with the same options continues it too; other options are refused
    again = tune(replace(load_tune_config(out, budget_s=600), max_trials=1), out, log=lambda line: None)
    assert len(again.rows) == 6
    r = runner.invoke(app, ["tune", "--data", "synthetic", "--model", "cnn", "--out", str(out)])
    _one_line_error(r, "holds a tune study with other options")


def test_a_trial_cut_off_by_a_crash_is_failed_and_tried_again(study, tmp_path):
    src, _ = study
    out = tmp_path / "study"
    shutil.copytree(src, out)
    config = load_tune_config(out, budget_s=600, max_trials=1)
    crashed = optuna.load_study(study_name=tn.STUDY_NAME, storage=tn.journal(out)).ask()  # never told: RUNNING
    values = {n: tn.SEARCH[n].suggest(crashed, n, config.base) for n in config.search}
    (out / "trials" / "trial-3.partial").mkdir(parents=True)  # what a killed trial leaves behind
    rows = tune(config, out, log=lambda line: None).rows
    assert [(r["trial"], r["state"], r["note"]) for r in rows[3:]] == [(3, "fail", ""), (4, "complete", "retry")]
    assert {tn.SEARCH[n].field: rows[4][tn.SEARCH[n].field] for n in config.search} == {
        tn.SEARCH[n].field: v for n, v in values.items()}
    assert not _leftovers(out)


def test_a_pruned_trial_stops_early_and_leaves_nothing(tmp_path):
    out = tmp_path / "pruned"
    always = optuna.pruners.ThresholdPruner(lower=1.01)  # nothing reaches 101%: prune after the first epoch
    result = tune(_config(base=replace(BASE, epochs=3), max_trials=2), out, pruner=always, log=lambda line: None)
    assert [(r["state"], r["epochs"]) for r in result.rows] == [("pruned", 1), ("pruned", 1)]
    assert all(r["objective"] is not None for r in result.rows)  # the epoch it was judged on
    assert result.best is None and not (out / "best.json").exists() and not (out / "best-run").exists()
    assert (out / "trials.png").is_file() and not _leftovers(out)


def test_a_trial_that_trained_every_epoch_is_scored_not_pruned(tmp_path):
    always = optuna.pruners.ThresholdPruner(lower=1.01)
    result = tune(_config(base=replace(BASE, epochs=1), max_trials=1), tmp_path / "t", pruner=always,
                  log=lambda line: None)
    assert [(r["state"], r["epochs"]) for r in result.rows] == [("complete", 1)]


def test_the_deadline_stops_a_running_trial_and_leaves_nothing(tmp_path):
    from edgesmith.optimize.tune_trial import run_trial

    trial = optuna.create_study(direction="maximize").ask()
    run_dir = tmp_path / "trial-0"
    with pytest.raises(optuna.TrialPruned, match="deadline"):  # a deadline already past: stop at the first step
        run_trial(trial, _config().trial_config({}), run_dir, float("-inf"), "float")
    assert trial.user_attrs["note"] == "deadline" and trial.user_attrs["epochs"] == 0
    assert list(tmp_path.iterdir()) == []


def test_no_trial_starts_when_the_estimate_does_not_fit(tmp_path, monkeypatch):
    calls = []

    def estimate(trials, epochs):  # no estimate before the first trial, then far more than the budget
        finished = [t for t in trials if t.state.is_finished()]
        calls.append(len(finished))
        return (None, 0.0) if not finished else (1e9, 0.0)

    monkeypatch.setattr(tn, "estimate", estimate)
    result = tune(_config(max_trials=5), tmp_path / "fit", log=lambda line: None)
    assert result.ran == 1 and result.stopped == "budget" and calls == [0, 1]


def test_estimate_is_median_setup_plus_epochs_times_median_epoch():
    trials = [SimpleNamespace(user_attrs=a) for a in (
        {"epochs": 2, "fit_s": 10.0, "seconds": 14.0, "post_s": 1.0},
        {"epochs": 1, "fit_s": 6.0, "seconds": 9.0, "post_s": 2.0},
        {"epochs": 4, "fit_s": 16.0, "seconds": 21.0, "post_s": 3.0},
        {"epochs": 0, "fit_s": 0.5, "seconds": 2.0},  # stopped in its first epoch: no per-epoch time
    )]
    assert tn.estimate(trials, 10) == (4.0 + 10 * 5.0, 2.0)
    assert tn.estimate([], 10) == (None, 0.0)


def test_int8_objective_scores_the_tflite_export(tmp_path):
    result = tune(_config(objective="int8", max_trials=1), tmp_path / "int8", log=lambda line: None)
    n_val = round(BASE.data.limit_train * BASE.val_split)
    value = result.best["value"]
    assert result.best["objective"] == "int8" and 0 <= value <= 1
    assert abs(value * n_val - round(value * n_val)) < 1e-6  # a count of the validation images


def test_tune_takes_the_data_options_and_its_best_command_line_repeats_them(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    from edgesmith.cli.tune_cmd import base_config

    tool = Path(__file__).resolve().parents[2] / "tools" / "make_messy_folder.py"
    spec = importlib.util.spec_from_file_location("make_messy_folder", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root = tmp_path / "photos"
    mod.make_messy_folder(root, per_class=10, seed=1)
    # mixed sizes without --image-size: the model's native size, as train does
    assert base_config(str(root), explicit={"model": "cnn"}, preset=None).data.image_size == (32, 32)
    seen = []
    monkeypatch.setattr(tn, "tune", lambda config, *a, **k: seen.append(config) or (_ for _ in ()).throw(
        ConfigError("stop here")))
    r = runner.invoke(app, ["tune", "--data", str(root), "--model", "cnn", "--image-size", "40x48", "--resize", "pad",
                            "--test-split", "0.25", "--strict-data", "--seed", "3", "--out", str(tmp_path / "t")])
    assert r.exit_code == 1 and "stop here" in r.output, r.output
    data = seen[0].base.data
    assert (data.image_size, data.resize, data.test_split, data.split_seed, data.strict) == ((40, 48), "pad", 0.25,
                                                                                             3, True)
    # the best trial's `edgesmith train` line builds the same data spec
    import edgesmith.train

    built = []
    monkeypatch.setattr(edgesmith.train, "train", lambda config, *a, **k: built.append(config))
    command = tune_report.train_command(seen[0].trial_config({}))
    assert runner.invoke(app, shlex.split(command)[1:]).exit_code == 0
    assert built[0].data == data


def test_the_int8_objective_scores_on_root_val_when_the_folder_has_one(tmp_path, monkeypatch):
    """As the float objective (train's val_accuracy): ROOT/val, not a hold-out of train, never test."""
    import shutil

    import numpy as np
    import edgesmith.export.fold
    import edgesmith.export.tflite
    import edgesmith.runtime
    from conftest import write_image_folders
    from edgesmith.optimize import tune_trial

    root = write_image_folders(tmp_path / "d", per_class=(6, 3))
    shutil.copytree(root / "test", root / "val")
    for f in list((root / "val" / "cat").iterdir())[:2]:  # val differs from test: 7 images, not 9
        f.unlink()
    scored = []

    class Runner:
        def predict(self, images):
            scored.append(len(images))
            return np.eye(3, dtype=np.float32)[np.zeros(len(images), int)]

    monkeypatch.setattr(tune_trial.keras.models, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(edgesmith.export.fold, "fold_rescaling", lambda m: m)
    monkeypatch.setattr(edgesmith.export.tflite, "to_tflite", lambda model, path, **k: path)
    monkeypatch.setattr(edgesmith.runtime, "load", lambda path, **k: Runner())
    config = TrainConfig(DataSpec(str(root)), model="cnn", val_split=0.34)  # a hold-out would be 6 images
    assert tune_trial.int8_top1(tmp_path / "m.keras", config) == pytest.approx(1 / 7)  # 1 cat of 7 val images
    assert scored == [7]
