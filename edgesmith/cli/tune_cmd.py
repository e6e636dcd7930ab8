"""``edgesmith tune``: search training hyperparameters under a wall-clock budget (see :mod:`edgesmith.optimize.tune`)."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from edgesmith.core.durations import parse_budget
from edgesmith.core.errors import ConfigError
from edgesmith.train import config as tc
from edgesmith.optimize import tune as tn
from edgesmith.optimize import tune_report
from edgesmith.optimize import tune_storage as ts

from ._common import choice_enum, errors, out
from .train_cmd import (ImageSizeOpt, LimitTestOpt, LimitTrainOpt, ModelOpt, OptData, Preset, Resize, ResizeOpt,
                        SeedOpt, StrictDataOpt, TestSplitOpt, data_spec)

Objective = choice_enum("Objective", tn.OBJECTIVES)
Pruner = choice_enum("Pruner", tn.PRUNERS)


def base_config(data: str, *, explicit: dict, preset: str | None, limit_train: int | None = None,
                limit_test: int | None = None, seed: int = 0, **data_options) -> "tc.TrainConfig":
    """The recipe every trial starts from: ``preset`` (if any) with the ``explicit`` fields winning.
    ``data_options`` (``image_size``, ``resize``, ``test_split``, ``strict_data``) shape the data as
    for ``train`` (:func:`.train_cmd.data_spec`); a folder of mixed sizes without ``image_size`` is
    decoded to the model's native size.

    Raises:
        ConfigError: unknown preset or an invalid value.
        DataError: a bad data option.
    """
    model = explicit.get("model") or tc.PRESETS.get(preset or "", {}).get("model") or tc.default("model")
    spec = data_spec(data, limit_train=limit_train, limit_test=limit_test, seed=seed, **data_options,
                     native_size=tc.native_size(model), native_from=model)
    if preset is None:
        return tc.TrainConfig(spec, seed=seed, **explicit)
    return tc.preset_config(preset, spec, seed=seed, **explicit)


def _margin(result: "tn.TuneResult") -> str:
    """``" (+1.00 pt over the default trial 0, within noise: ±4.2 pt on 200 validation images)"``, or "" without
    a finished default trial. Per-image results are not kept, so the interval is the unpaired binomial one
    (:func:`edgesmith.benchmarks.stats.two_proportion_ci95_pts`), wider than a paired one."""
    import json

    from edgesmith.benchmarks.stats import two_proportion_ci95_pts

    best = result.best
    base = next((r for r in result.rows if r.get("note") == "baseline" and r.get("state") == "complete"
                 and r.get("objective") is not None), None)
    if base is None or base["trial"] == best["trial"]:
        return " (the default recipe itself)" if base is not None else ""
    delta = (best["value"] - base["objective"]) * 100
    try:
        n = json.loads((result.out / "best-run" / "manifest.json").read_text())["dataset"]["n_val"]
    except (OSError, ValueError, KeyError, TypeError):
        n = None
    if not n:
        return f" ({delta:+.2f} pt over the default, trial {base['trial']}; validation size unknown, no interval)"
    ci = two_proportion_ci95_pts(best["value"], n, base["objective"], n)
    verdict = "within noise" if abs(delta) <= ci else "beyond noise"
    return (f" ({delta:+.2f} pt over the default, trial {base['trial']}, {verdict}: ±{ci:.1f} pt on {n} "
            "validation images)")


def _print(result: "tn.TuneResult", objective: str) -> None:
    table = Table(title=f"{len(result.rows)} trials ({result.ran} this session, {result.seconds:.0f} s, "
                        f"stopped by {result.stopped})")
    keys = tune_report.columns(result.rows)
    for k in keys:
        table.add_column(f"val top-1 ({objective})" if k == "objective" else k,
                         justify="right" if k in (*tune_report.TAIL, "trial") else "left")
    for r in result.rows:
        table.add_row(*(tune_report.cell(k, r.get(k)) for k in keys))
    out.print(table)
    if result.best is None:
        out.print(f"no trial finished yet; continue with: edgesmith tune --resume {result.out} --budget ...")
        return
    where = (f"its run in {result.out / 'best-run'}" if result.best.get("run") else
             "its run is on the worker that trained it (pass --artifacts DIR to share runs between workers)")
    test = result.best.get("test_top1")
    out.print(f"best: trial {result.best['trial']}, {objective} validation top-1 {result.best['value']:.2%}"
              f"{_margin(result)}; reports in {result.out}, {where}")
    if test is not None:
        out.print(f"its test top-1: {test:.2%} on {result.best['n_test']:,} images (the float model; the test "
                  "split is read once, after the search)", highlight=False)
    out.print(result.best["command"], highlight=False, soft_wrap=True)


def tune_cmd(ctx: typer.Context, data: OptData = None, model: ModelOpt = tc.default("model"),
             epochs: Annotated[int, typer.Option(help="Training epochs per trial (what the pruner's rungs count "
                                                 "and the best command line trains).")] = tc.default("epochs"),
             limit_train: LimitTrainOpt = None, limit_test: LimitTestOpt = None, seed: SeedOpt = tc.default("seed"),
             image_size: ImageSizeOpt = None, resize: ResizeOpt = Resize("squash"), test_split: TestSplitOpt = None,
             strict_data: StrictDataOpt = False,
             preset: Annotated[Optional[Preset], typer.Option(help="Start every trial from this `train` recipe "
                                                              "(explicit --model/--epochs win).")] = None,
             search: Annotated[str, typer.Option(help="Comma-separated parameters to search: " + tn.search_help()
                                                 + ".")] = "lr,weight_decay",
             budget: Annotated[str, typer.Option(help="Wall-clock budget of this session, e.g. 90s, 20m, 1h, 1h30m. "
                                                 "No trial starts that would not finish in time, and the running "
                                                 "one is stopped at the deadline: the command ends within the "
                                                 "budget plus a few seconds (stopping one step, the reports).")]
             = "20m",
             objective: Annotated[Objective, typer.Option(help="What a trial scores: validation top-1 of the float "
                                                          "Keras model, or of its full-integer int8 TFLite export.")]
             = Objective("float"),
             pruner: Annotated[Pruner, typer.Option(help="Stop bad trials early: Hyperband, ASHA-style successive "
                                                    "halving, or none.")] = Pruner("hyperband"),
             trials: Annotated[Optional[int], typer.Option(help="Stop after N trials in this session "
                                                           "[default: only the budget stops it].")] = None,
             val_split: Annotated[float, typer.Option(help="Fraction of train held out to score trials on "
                                                      "(ROOT/val instead when the folder has one; the test split "
                                                      "is never used).")] = 0.1,
             out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Tune directory; an existing "
                                                             "one with the same options is continued "
                                                             "[default: `runs/tune-<model>-<timestamp>`].")] = None,
             resume: Annotated[Optional[Path], typer.Option(help="Continue the study in DIR with its own options "
                                                            "(only --budget and --trials are read).",
                                                            metavar="DIR")] = None,
             storage: Annotated[Optional[str], typer.Option(help="Keep the study in this database (an SQLAlchemy "
                                                            "URL, e.g. postgresql+psycopg://user:pw@host/db) instead "
                                                            "of --out's journal: every `edgesmith tune` with the same "
                                                            "--storage and --study, on any machine, adds workers to "
                                                            "it; joining needs no other options.",
                                                            metavar="URL")] = None,
             study: Annotated[str, typer.Option(help="The study's name in --storage.")] = ts.STUDY_NAME,
             artifacts: Annotated[Optional[str], typer.Option(help="A directory every worker mounts: the best trial's "
                                                              "run is uploaded there, and each worker's --out gets "
                                                              "it as best-run.", metavar="DIR")] = None,
             workers: Annotated[int, typer.Option(help="Worker processes on this machine, on one study (each with "
                                                  "cores/N TensorFlow threads); --trials is split between them.")]
             = 1,
             heartbeat: Annotated[int, typer.Option(help="With --storage: a running trial's heartbeat period, s; a "
                                                    "trial silent for --grace s (its worker died) is failed and "
                                                    "retried.")] = ts.HEARTBEAT_S,
             grace: Annotated[int, typer.Option(help="With --storage: seconds without a heartbeat before a "
                                                "trial is failed and retried.")] = ts.GRACE_S):
    """Search learning rate, weight decay, batch size, width or augmentation with Optuna (TPE sampler,
    Hyperband pruning) under a time budget; resumable. Writes trials.csv/.md/.png, best.json and the best
    trial's run, and prints the `edgesmith train` command line of the best config."""
    with errors():
        budget_s = parse_budget(budget)
        if storage is None and (artifacts is not None or study != ts.STUDY_NAME):
            raise ConfigError("--study and --artifacts name a shared study: they need --storage URL")
        shared = ts.StudyStorage(storage, study, artifacts, heartbeat, grace)
        if resume is not None:
            config, where = tn.load_tune_config(resume, budget_s=budget_s, max_trials=trials), resume
        elif data is None and storage is not None:  # join a shared study with its own options
            config = tn.load_shared_config(shared, budget_s=budget_s, max_trials=trials)
            where = out_dir or Path("runs") / f"tune-{study}"
        else:
            if data is None:
                raise ConfigError("--data is required (or --resume DIR, or --storage URL to join a study)")
            set_here = {k: v for k, v in (("model", model), ("epochs", epochs))
                        if preset is None or ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP")}
            base = base_config(data, explicit={**set_here, "val_split": val_split}, seed=seed,
                               preset=preset.value if preset else None, limit_train=limit_train,
                               limit_test=limit_test, image_size=image_size, resize=resize, test_split=test_split,
                               strict_data=strict_data)
            names = tuple(s.strip() for s in search.split(",") if s.strip())
            config = tn.TuneConfig(base, names, budget_s, objective.value, pruner.value, trials)
            where = out_dir or Path("runs") / f"tune-{base.model}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
        result = tn.tune(config, where, storage=shared, workers=workers,
                         log=lambda line: out.print(line, highlight=False))
        _print(result, config.objective)
