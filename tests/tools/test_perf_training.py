"""tools/perf_training.py's ceiling run: a test curve scored after every epoch, and its summary."""
import csv
import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

TOOL = Path(__file__).resolve().parents[2] / "tools" / "perf_training.py"


def _tool():
    spec = importlib.util.spec_from_file_location("perf_training", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ceiling_run_scores_every_epoch_and_finds_the_first_within_1pt(tmp_path):
    c = _tool().ceiling("synthetic", tmp_path / "run", epochs=3, precision="fp32", model="cnn", batch_size=64,
                        optimizer="sgd", weight_decay=5e-3)
    with open(tmp_path / "run" / "test_curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    top1 = [float(r["test_top1"]) for r in rows]
    assert c["ceiling_top1"] == max(top1) > 0.3  # learnable data: chance is 0.1
    first = next(i for i, t in enumerate(top1) if t >= max(top1) - 0.01)
    assert c["within_1pt_epoch"] == first + 1 and c["final_top1"] == top1[-1]
    assert 0 < c["within_1pt_minutes"] <= c["train_minutes"]


def test_the_tools_hold_no_machine_paths_and_import_no_cli():
    for path in TOOL.parent.glob("*.py"):
        text = path.read_text()
        assert "/work/" not in text and "/home/" not in text, path
        # the CLI may run as a child process (perf_project.py), but no tool imports it
        assert not re.search(r"^\s*(from edgesmith\.cli|import edgesmith\.cli)", text, re.M), path
