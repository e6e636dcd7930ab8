"""What ``edgesmith tune`` writes after every trial, atomically, into the tune directory.

* ``trials.csv`` / ``trials.md``: one row per trial: number, state (complete, pruned, fail,
  running), note (baseline, retry, deadline, diverged), the worker that ran it (``host:pid``;
  a column once any trial names one), the values it trained with,
  the objective (validation top-1; for a pruned trial its last reported epoch), epochs run and
  seconds.
* ``trials.png``: the objective per trial, pruned trials as crosses, the best so far as a line.
* ``best.json``: the best trial's values and objective, its full TrainConfig, and the
  ``edgesmith train`` command line that trains exactly that config (same epochs, data, seed and
  validation hold-out); ``run`` is ``best-run`` when ``TUNE/best-run`` holds that trial's run (else
  None: another machine trained it and no artifact store carries it), ``artifacts`` the ids of its
  files in the shared artifact store, ``test_top1`` / ``n_test`` that run's test top-1 once the
  search is over (None before: trials never read the test split).
* ``tune.json``: the study, its sessions (with package versions) and the best trial so far.
"""
from __future__ import annotations

import csv
import json
import shlex
from dataclasses import fields, replace
from pathlib import Path

from edgesmith.train.config import TrainConfig

from edgesmith.core.cpuinfo import machine_stamp
from edgesmith.core.fsutil import atomic_path, write_json, write_text
from edgesmith.core.rundir import now_iso

COLUMNS = ("trial", "state", "note", "worker")
TAIL = ("objective", "epochs", "seconds")
_OPTION = {"learning_rate": "--lr"}  # TrainConfig field -> `edgesmith train` option, where they differ
_NOT_OPTIONS = {"data", "seed", "quiet", "tensorboard"}  # set otherwise, or not part of the recipe


def train_command(config: TrainConfig) -> str:
    """The ``edgesmith train`` command line that builds exactly ``config`` (every field that differs
    from TrainConfig's default, the learning rate always, and the data options), shell-quoted; TensorBoard is left at
    the command's default."""
    data = config.data
    argv = ["edgesmith", "train", "--data", data.source, "--seed", str(config.seed)]
    for name in ("limit_train", "limit_test"):
        if getattr(data, name) is not None:
            argv += [f"--{name.replace('_', '-')}", str(getattr(data, name))]
    if data.image_size is not None:
        argv += ["--image-size", "x".join(map(str, data.image_size))]
    if data.resize != "squash":
        argv += ["--resize", data.resize]
    if data.test_split is not None:
        argv += ["--test-split", repr(data.test_split)]
    if data.strict:
        argv.append("--strict-data")
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in _NOT_OPTIONS or value is None or (value == f.default and f.name not in ("model", "epochs")):
            continue
        flag = _OPTION.get(f.name, "--" + f.name.replace("_", "-"))
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return shlex.join(argv)


def trial_rows(study) -> list[dict]:
    """One dict per trial: ``trial``, ``state``, ``note``, the values it trained with (TrainConfig
    field -> value), ``objective`` (None when none was reported), ``epochs``, ``seconds``."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                     if t.intermediate_values else None)
        rows.append({"trial": t.number, "state": t.state.name.lower(), "note": a.get("note", ""),
                     "worker": a.get("worker", ""), **a.get("values", {}), "objective": value,
                     "epochs": a.get("epochs"), "seconds": a.get("seconds")})
    return rows


def best_record(study, config) -> dict | None:
    """``best.json``: the best finished trial, or None before one finished."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    values = best.user_attrs["values"]
    # the exact config the trial trained (values hold the applied learning rate), as `train` builds it
    train_config = replace(config.trial_config(values), tensorboard=TrainConfig.tensorboard)
    return {"trial": best.number, "objective": config.objective, "value": best.value, "values": values,
            "params": best.params, "epochs": best.user_attrs.get("epochs"), "run": "best-run",
            "train_config": train_config.to_dict(), "command": train_command(train_config)}


def _kept_test_top1(out: Path) -> tuple[float | None, int]:
    """``(top1, n_test)`` of ``out/best-run`` on the test split: ``(None, 0)`` until the search is over
    and the kept run has been scored (trials never read the test split)."""
    try:
        m = json.loads((out / "best-run" / "metrics.json").read_text())
    except (OSError, ValueError):
        return None, 0
    return m.get("top1"), m.get("n_test") or 0


def write_reports(study, config, out: Path, record: dict | None) -> tuple[list[dict], dict | None]:
    """Rewrite ``trials.csv``, ``trials.md``, ``trials.png``, ``best.json`` and ``tune.json`` in ``out``
    (``tune.json`` only with a ``record``: a worker process of ``--workers`` leaves it to its parent).

    Returns:
        ``(rows, best)``: :func:`trial_rows` and :func:`best_record`.
    """
    from .tune_storage import best_run_trial

    rows, best = trial_rows(study), best_record(study, config)
    if best is not None:
        held = best_run_trial(out)  # None: a study older than the marker, whose best-run is its best
        best["run"] = "best-run" if held == best["trial"] or (held is None and (out / "best-run").is_dir()) else None
        best["artifacts"] = study.best_trial.user_attrs.get("artifacts")
        best["test_top1"], best["n_test"] = _kept_test_top1(out) if best["run"] else (None, 0)
    keys = columns(rows)
    with atomic_path(out / "trials.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    write_text(out / "trials.md", markdown(rows, config.objective))
    plot_trials(rows, out / "trials.png", config.objective)
    if best is not None:
        write_json(out / "best.json", best)
    if record is None:
        return rows, best
    record.update(updated=now_iso(), trials=len(rows), best=best and {k: best[k] for k in ("trial", "value", "values",
                                                                                             "command")})
    write_json(out / "tune.json", record)
    return rows, best


def columns(rows: list[dict]) -> list[str]:
    """The table's columns: trial, state, note, worker (when any trial names one), every value any
    trial set, objective, epochs, seconds."""
    middle = []
    for r in rows:
        middle += [k for k in r if k not in (*COLUMNS, *TAIL) and k not in middle]
    head = [k for k in COLUMNS if k != "worker" or any(r.get("worker") for r in rows)]
    return [*head, *middle, *TAIL]


def cell(key: str, value) -> str:
    """A table cell: the objective as a percentage, seconds rounded, None as empty."""
    if value is None or value == "":
        return ""
    if key == "objective":
        return f"{value:.2%}"
    if key == "seconds":
        return f"{value:.0f}"
    return str(value)


def markdown(rows: list[dict], objective: str) -> str:
    """The trials as a Markdown table."""
    keys = columns(rows)
    head = [f"val top-1 ({objective})" if k == "objective" else k for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if k in TAIL or k == "trial" else "---"
                                                            for k in keys) + "|"]
    lines += ["| " + " | ".join(cell(k, r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_trials(rows: list[dict], path: Path, objective: str) -> None:
    """Write the objective per trial to ``path`` (PNG): finished trials as dots, pruned ones as
    crosses at their last reported epoch, the best so far as a step line; the title names this
    machine's CPU and today's date."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig, ax = plt.subplots(figsize=(7, 4))
    done = [(r["trial"], r["objective"]) for r in rows if r["state"] == "complete"]
    pruned = [(r["trial"], r["objective"]) for r in rows if r["state"] == "pruned" and r["objective"] is not None]
    if done:
        ax.scatter(*zip(*done), color="tab:blue", label="complete", zorder=3)
        best, line = 0.0, []
        for n, v in done:
            best = max(best, v)
            line.append((n, best))
        line.append((rows[-1]["trial"] + 0.5, best))  # the last step gets a width, so a best last trial shows
        ax.step(*zip(*line), where="post", color="tab:green", label="best so far")
    if pruned:
        ax.scatter(*zip(*pruned), color="tab:red", marker="x", label="pruned (at the epoch it stopped)", zorder=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation top-1 ({objective})")
    ax.set_title(f"validation top-1 per trial: {machine_stamp()}", fontsize=10)
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
