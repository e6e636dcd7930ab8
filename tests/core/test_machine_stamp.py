"""Plots name the machine and date that made them (edgesmith.core.cpuinfo.machine_stamp)."""
import datetime
import re

import numpy as np
import pytest

from edgesmith.core.cpuinfo import cpu_info, machine_stamp


def test_stamp_names_the_given_cpu_and_the_date_of_a_timestamp():
    assert machine_stamp("AMD EPYC 9R14", "2026-11-22T10:31:00+00:00") == "AMD EPYC 9R14 (2026-11-22)"


def test_stamp_defaults_to_this_cpu_and_today():
    stamp = machine_stamp()
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert re.fullmatch(r".+ \(\d{4}-\d{2}-\d{2}\)", stamp)
    assert stamp.endswith(f"({today})")
    if cpu_info().model:
        assert stamp.startswith(cpu_info().model)


@pytest.mark.plots
def test_every_plot_title_names_its_machine_and_date(tmp_path, monkeypatch):
    """pareto.png and confusion-*.png name the report's CPU and date; training curves and tune's
    trials plot name this machine and today."""
    from matplotlib.figure import Figure

    from edgesmith.benchmarks.pareto import plot_pareto
    from edgesmith.core.perclass import plot_confusion
    from edgesmith.optimize.tune_report import plot_trials
    from edgesmith.train.plots import plot_curves

    titles: list[str] = []
    real_savefig = Figure.savefig

    def savefig(fig, *args, **kwargs):
        titles.append(" ".join([fig._suptitle.get_text() if fig._suptitle else ""]
                               + [ax.get_title() for ax in fig.axes]))
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    report = {"run": "r", "created": "2026-11-22T10:00:00+00:00", "environment": {"cpu": "Test CPU 9000"},
              "results": [{"batch": 1, "latency_ms": {"p50": p}, "top1": t, "bytes": b, "runtime": "litert-cpu",
                           "artifact": a, "threads": 1}
                          for a, p, t, b in (("fp32", 0.3, 0.76, 3000), ("int8", 0.1, 0.75, 1000))]}
    plot_pareto(report, tmp_path / "p.png")
    plot_confusion(np.eye(2, dtype=int), "ab", tmp_path / "c.png", title="int8",
                   machine=machine_stamp("Test CPU 9000", report["created"]))
    assert all("Test CPU 9000 (2026-11-22)" in t for t in titles), titles
    here = machine_stamp()
    plot_curves({"accuracy": [0.1, 0.2], "val_accuracy": [0.1, 0.3]}, tmp_path / "curves.png")
    plot_trials([{"trial": 0, "state": "complete", "objective": 0.5}], tmp_path / "t.png", "float")
    assert len(titles) == 4 and all(here in t for t in titles[2:]), titles
