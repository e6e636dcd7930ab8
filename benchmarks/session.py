"""``bench()``: the command's whole job: measure a run here or on several devices, write the reports,
record the stage, remember the measurement for doctor.

Above :mod:`.suite` (one device's measurement) and :mod:`.devices` (several devices), so neither
imports the other's caller.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import RunDir
from edgesmith.core.runlock import locks_run
from edgesmith.core.stages import BenchStage, record_stage

from .advice import recommend
from .devices import bench_devices
from .lastbench import remember
from .report import write_reports
from .suite import BenchConfig, bench_run


@locks_run("bench")
def bench(run_dir: str | Path, config: BenchConfig = BenchConfig(),
          progress: Callable[[str], None] | None = None, *, plot: bool = True,
          recommend_budget: float | None = None, devices=None,
          device_parallel: int | None = None, out_dir: str | Path | None = None) -> tuple[dict, dict[str, Path]]:
    """Benchmark a run, write its reports into ``RUN/bench/`` and record the bench stage.

    Side effects: holds the run's lock throughout (:func:`edgesmith.core.runlock.run_lock`:
    waits for another writer, such as an export, to finish); writes
    ``RUN/bench/{results.json,results.csv,report.md,pareto.png}``
    (``pareto.png`` only with matplotlib, see :func:`.report.write_reports`) and records
    :class:`~edgesmith.core.stages.BenchStage` with their run-relative paths in
    ``RUN/manifest.json``.

    Example::

        report, paths = bench("runs/demo", bench_config("quick"), progress=print)

    Args:
        run_dir: a run directory with exported artifacts.
        config: what to measure (see :func:`.presets.bench_config` for the named presets).
        progress: called with one progress line at a time.
        plot: also draw ``pareto.png``.
        recommend_budget: when given (percentage points), name the artifact to ship here
            (:func:`.advice.recommend`: fastest batch-1 p50 within this budget of float top-1,
            else the smallest) as ``report["recommendation"]``.
        devices: measure on these devices (:func:`.devices.parse_devices`: ``local`` and
            ``ssh://`` ones) into one report (:func:`.devices.bench_devices`: local alone, the SSH
            devices at the same time, at most ``device_parallel`` at once); None: this machine only.
        out_dir: write the reports here instead of ``RUN/bench/``; the run's manifest is then
            left alone (no bench stage is recorded: its results live elsewhere).

    Returns:
        ``(report, paths)``: the report of :func:`bench_run` (with ``comparisons``) and the
        files written, by kind (``json``, ``csv``, ``md``, ``png``).

    Raises:
        RunDirError: no manifest, no artifacts, or an artifact changed since export.
        ConfigError: a bad config or a negative ``recommend_budget``.
        RunLockedError: another command kept the run for longer than the lock's wait.
    """
    if recommend_budget is not None and recommend_budget < 0:
        raise ConfigError(f"recommend_budget must be >= 0 points, got {recommend_budget}",
                          field="bench.recommend_budget")
    run = RunDir(run_dir)
    if devices is not None:
        report = bench_devices(run, config, devices, progress, recommend_budget=recommend_budget,
                               parallel=device_parallel)
    else:
        report = bench_run(run, config, progress)
        if recommend_budget is not None:
            report["recommendation"] = recommend(report, recommend_budget, run_dir=run.root)
    if out_dir is not None:
        paths = write_reports(report, out_dir, plot=plot)
    else:
        paths = write_reports(report, run.bench, plot=plot)
        record_stage(run, BenchStage(reports=[p.relative_to(run.root).as_posix() for p in paths.values()]))
    if devices is None:
        remember(paths["json"], run.root)  # doctor quotes the last measurement on this machine
    return report, paths
