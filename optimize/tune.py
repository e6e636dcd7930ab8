"""Hyperparameter search for ``edgesmith tune``: Optuna, Hyperband pruning, a wall-clock budget.

A study is a directory (``TUNE/``) that can be resumed at any time:

* ``journal.log``  Optuna's journal (JournalStorage over a JournalFileBackend): every trial, its
  parameters and per-epoch validation top-1, appended as they happen. Running ``tune`` again on
  the same directory continues the same study; a trial cut off by a crash or Ctrl-C is marked
  failed and its parameters are tried again first.
* ``tune.json``    what the study searches (base TrainConfig, search names, objective, pruner), the
  sessions (start, end, budget, trials, package versions) and the best trial so far.
* ``trials.csv`` / ``trials.md`` / ``trials.png`` / ``best.json``: see :mod:`.tune_report`.
* ``best-run/``    the run directory of the best finished trial (``edgesmith export TUNE/best-run``
  works on it); every other trial's run is deleted as soon as it is scored.

Each trial trains the base config with the sampled values (:data:`SEARCH`) for ``base.epochs``
epochs and reports the validation top-1 (a hold-out of the training split, never the test split)
after every epoch; the pruner (Hyperband by default, Li et al., 2018; or ASHA-style successive
halving) stops the unpromising ones. The objective is that validation top-1 after the last
epoch, of the float model or of its full-integer int8 TFLite export. Trial 0 is the base recipe
itself (values outside a search range are clipped into it), so the best trial is never worse
than the default on the validation set. The sampler is TPE (Bergstra et al., 2011) with five
random start-up trials, seeded with ``base.seed`` and the number of trials so far.

Budget: no trial starts when the median trial so far would not finish before the deadline, and
a running trial is stopped (pruned) at the deadline, so ``tune`` returns within the budget
plus the time to stop one training step and write the reports (seconds).

Example::

    from edgesmith.core.data import DataSpec
    from edgesmith.train.config import TrainConfig
    from edgesmith.optimize.tune import TuneConfig, tune
    base = TrainConfig(DataSpec("cifar10"), model="resnet8", epochs=5, val_split=0.1)
    result = tune(TuneConfig(base, ("lr", "weight_decay"), budget_s=1800), "runs/tune-resnet8")
    print(result.best["command"])        # the `edgesmith train ...` line of the best trial
"""
from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgesmith.train.config import AUGMENTS, TrainConfig

from edgesmith.core.errors import BackendUnavailable, ConfigError
from edgesmith.core.fsutil import write_json
from edgesmith.core.rundir import now_iso, package_versions

OBJECTIVES = ("float", "int8")
PRUNERS = ("hyperband", "asha", "none")
STUDY_NAME = "edgesmith-tune"
STARTUP_TRIALS = 5  # random trials before TPE models the results


# --- the search space ------------------------------------------------------------------

@dataclass(frozen=True)
class SearchParam:
    """One searchable TrainConfig field: a log-uniform range or a list of choices, both
    computed from the base config (so a study's space is fixed by its base)."""

    field: str
    help: str
    log_range: Callable[[TrainConfig], tuple[float, float]] | None = None
    choices: Callable[[TrainConfig], tuple] | None = None
    models: tuple[str, ...] = ()  # the models it applies to; empty: all

    def suggest(self, trial, name: str, base: TrainConfig):
        """The value for ``trial`` (floats rounded to 3 significant digits, so command lines stay short)."""
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices(base))
        low, high = self.log_range(base)
        return float(f"{trial.suggest_float(name, low, high, log=True):.3g}")

    def baseline(self, base: TrainConfig):
        """The base config's value, clipped into the range (weight decay 0 becomes the floor)."""
        value = getattr(base, self.field)
        if self.log_range is None:
            return value
        low, high = self.log_range(base)
        return min(max(value, low), high)


SEARCH = {
    "lr": SearchParam("learning_rate", "peak learning rate, log-uniform over [base/10, base x 3] (base: --preset's "
                      "rate, else 3e-3 for Adam)", log_range=lambda b: (b.learning_rate / 10,
                                                                        min(b.learning_rate * 3, 9.9))),
    "weight_decay": SearchParam("weight_decay", "decoupled weight decay, log-uniform over [1e-5, 0.3]",
                                log_range=lambda b: (1e-5, 0.3)),
    "batch_size": SearchParam("batch_size", "64, 128, 256 or 512 (without lr in the search, the learning rate "
                              "scales with it)", choices=lambda b: tuple(sorted({64, 128, 256, 512, b.batch_size}))),
    "width": SearchParam("width", "MobileNetV2 width multiplier 0.35, 0.5, 0.75 or 1.0",
                         choices=lambda b: tuple(sorted({0.35, 0.5, 0.75, 1.0, b.width})), models=("mobilenetv2",)),
    "augment": SearchParam("augment", "augmentation preset: " + ", ".join(AUGMENTS), choices=lambda b: AUGMENTS),
}


def search_help() -> str:
    """One line per searchable name, for ``--help``."""
    return "; ".join(f"{name}: {p.help}" for name, p in SEARCH.items())


# --- the config ------------------------------------------------------------------------

@dataclass(frozen=True)
class TuneConfig:
    """What to search, for how long, and how trials are judged.

    Attributes:
        base: the recipe every trial starts from (data, model, epochs per trial, seed, the
            validation hold-out ``val_split`` > 0 the objective is measured on, ...).
        search: names from :data:`SEARCH` to sample (lr, weight_decay, batch_size, width, augment).
        budget_s: wall-clock budget of this session, s.
        objective: ``float`` (validation top-1 of the Keras model) or ``int8`` (of its full-integer
            int8 TFLite export, run with LiteRT).
        pruner: ``hyperband``, ``asha`` (successive halving) or ``none``.
        max_trials: stop after this many trials in this session (None: only the budget stops it).
    """

    base: TrainConfig
    search: tuple[str, ...]
    budget_s: float
    objective: str = "float"
    pruner: str = "hyperband"
    max_trials: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "search", tuple(self.search))
        if not self.search:
            raise ConfigError(f"--search needs at least one name: {', '.join(SEARCH)}")
        for name in self.search:
            if name not in SEARCH:
                raise ConfigError(f"unknown --search name {name!r}; choose from {', '.join(SEARCH)}")
            if SEARCH[name].models and self.base.model not in SEARCH[name].models:
                raise ConfigError(f"--search {name} applies to {', '.join(SEARCH[name].models)} only, "
                                  f"not {self.base.model}")
        if len(set(self.search)) != len(self.search):
            raise ConfigError(f"--search names a parameter twice: {','.join(self.search)}")
        if not self.base.val_split > 0:
            raise ConfigError("tune scores trials on a validation hold-out: --val-split must be > 0")
        if not self.budget_s > 0:
            raise ConfigError(f"--budget must be longer than zero, got {self.budget_s} s")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown pruner {self.pruner!r}; choose one of {', '.join(PRUNERS)}")
        if self.max_trials is not None and self.max_trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.max_trials}")

    def study_dict(self) -> dict:
        """What identifies the study (a resumed study must match it); not the session's budget."""
        base = self.base.to_dict()
        base.pop("tensorboard")
        return {"base": base, "search": list(self.search), "objective": self.objective, "pruner": self.pruner}

    @classmethod
    def from_study_dict(cls, d: dict, *, budget_s: float, max_trials: int | None = None) -> "TuneConfig":
        """Rebuild the config of a study from :meth:`study_dict` output, with a new session's budget."""
        return cls(TrainConfig.from_dict(d["base"]), tuple(d["search"]), budget_s, d["objective"], d["pruner"],
                   max_trials)

    def trial_config(self, values: dict) -> TrainConfig:
        """The TrainConfig of a trial: the base with the sampled ``values`` (TrainConfig field ->
        value); without a sampled learning rate, a sampled batch size scales the base's rate."""
        if "batch_size" in values and "learning_rate" not in values:
            values = {**values, "learning_rate": self.base.learning_rate * values["batch_size"] / self.base.batch_size}
        return replace(self.base, **values, quiet=True, tensorboard=False)


@dataclass(frozen=True)
class TuneResult:
    """What a :func:`tune` session did.

    Attributes:
        out: the tune directory.
        rows: one dict per trial of the study (see :func:`.tune_report.trial_rows`).
        best: the content of ``best.json`` (params, value, ``command``), None before a finished trial.
        ran: trials run in this session.
        stopped: ``budget`` (the next trial would not fit) or ``trials`` (``max_trials`` reached).
        seconds: wall-clock time of the session, s.
    """

    out: Path
    rows: list
    best: dict | None
    ran: int
    stopped: str
    seconds: float


# --- the study -------------------------------------------------------------------------

def _optuna():
    try:
        import optuna
    except ImportError:
        raise BackendUnavailable("edgesmith tune needs optuna: pip install 'edgesmith[train]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def load_tune_config(out: str | Path, *, budget_s: float, max_trials: int | None = None) -> TuneConfig:
    """The TuneConfig of the study in ``out`` (``tune.json``), with a new session's budget.

    Raises:
        ConfigError: ``out`` holds no tune study.
    """
    path = Path(out) / "tune.json"
    if not path.is_file():
        raise ConfigError(f"no tune study to resume at {out} (expected {path})")
    return TuneConfig.from_study_dict(json.loads(path.read_text(encoding="utf-8"))["study"], budget_s=budget_s,
                                      max_trials=max_trials)


def _claim(config: TuneConfig, out: Path) -> dict:
    """Create the tune directory, or check that it holds this same study; returns ``tune.json``."""
    path = out / "tune.json"
    if path.is_file():
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("study") != config.study_dict():
            raise ConfigError(f"{out} holds a tune study with other options; pass --resume {out} to continue "
                              "it, or choose another --out")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a tune directory; choose another --out")
    else:
        record = {"what": "edgesmith tune", "created": now_iso(), "study": config.study_dict(), "sessions": []}
    shutil.rmtree(out / "trials", ignore_errors=True)  # runs of trials cut off by a crash
    out.mkdir(parents=True, exist_ok=True)
    return record


def _make_pruner(optuna, config: TuneConfig):
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.base.epochs, reduction_factor=3)
    if config.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def journal(out: str | Path):
    """The Optuna storage of the study in ``out``: a JournalStorage over ``out/journal.log``
    (``optuna.load_study(study_name=STUDY_NAME, storage=journal(out))`` opens it)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(Path(out) / "journal.log")))


def _open_study(optuna, config: TuneConfig, out: Path, pruner):
    """Create or load the study in ``out/journal.log``; re-queue trials a crash cut off, and queue
    the base recipe as the first trial of a new study."""
    from optuna.trial import TrialState

    storage = journal(out)
    done = sum(s.n_trials for s in optuna.get_all_study_summaries(storage) if s.study_name == STUDY_NAME)
    sampler = optuna.samplers.TPESampler(seed=config.base.seed + done, n_startup_trials=STARTUP_TRIALS)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize", sampler=sampler,
                                pruner=pruner or _make_pruner(optuna, config), load_if_exists=True)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"note": "retry"})
    if not done:
        study.enqueue_trial({n: SEARCH[n].baseline(config.base) for n in config.search},
                            user_attrs={"note": "baseline"})
    return study


def estimate(trials, epochs: int) -> tuple[float | None, float]:
    """``(seconds a full trial takes, seconds after its last epoch)`` from the trials so far:
    median set-up + scoring time, plus ``epochs`` x the median seconds per epoch; ``(None, 0)``
    before any trial ran an epoch."""
    timed = [t.user_attrs for t in trials if t.user_attrs.get("epochs") and "seconds" in t.user_attrs]
    if not timed:
        return None, 0.0
    per_epoch = statistics.median(a["fit_s"] / a["epochs"] for a in timed)
    overhead = statistics.median(a["seconds"] - a["fit_s"] for a in timed)
    after = statistics.median(a.get("post_s", 0.0) for a in timed)
    return overhead + epochs * per_epoch, after


def tune(config: TuneConfig, out: str | Path, *, pruner=None, log: Callable[[str], None] = print) -> TuneResult:
    """Search ``config.search`` around ``config.base`` until the budget (or ``max_trials``) is spent.

    Side effects: creates or continues the study in ``out`` (see the module docstring), trains
    one model per trial (TensorFlow), rewrites the reports after every trial, keeps only the
    best trial's run (``out/best-run``).

    Args:
        out: the tune directory; an existing one with the same study is continued.
        pruner: an Optuna pruner to use instead of ``config.pruner``'s (tests use one that always prunes).
        log: called with one line per trial.

    Returns:
        A :class:`TuneResult`.

    Raises:
        ConfigError: ``out`` holds a different study, or is another directory.
        BackendUnavailable: optuna or TensorFlow is missing.
        DataError: the dataset cannot be loaded.
    """
    from . import tune_report

    start = time.monotonic()
    deadline = start + config.budget_s
    optuna, out = _optuna(), Path(out)
    record = _claim(config, out)
    session = {"started": now_iso(), "budget_s": config.budget_s, "trials": 0, "versions": package_versions()}
    record["sessions"].append(session)
    write_json(out / "tune.json", record)
    study = _open_study(optuna, config, out, pruner)
    stopped = "trials"
    try:
        while config.max_trials is None or session["trials"] < config.max_trials:
            need, after = estimate(study.trials, config.base.epochs)
            if time.monotonic() + (need or 0.0) > deadline:
                stopped = "budget"
                break
            _run_one(optuna, study, config, out, deadline - after, log)
            session["trials"] += 1
            tune_report.write_reports(study, config, out, record)
    finally:
        shutil.rmtree(out / "trials", ignore_errors=True)
    session.update(ended=now_iso(), seconds=round(time.monotonic() - start, 1), stopped=stopped)
    rows, best = tune_report.write_reports(study, config, out, record)
    return TuneResult(out, rows, best, session["trials"], stopped, session["seconds"])


def _run_one(optuna, study, config: TuneConfig, out: Path, deadline: float, log) -> None:
    """Ask for a trial, train it (:func:`.tune_trial.run_trial`) and tell the study the outcome;
    move the run to ``out/best-run`` when it is the best so far, else delete it."""
    from optuna.trial import TrialState

    from .tune_trial import run_trial

    t0 = time.monotonic()
    trial = study.ask()
    values = {SEARCH[n].field: SEARCH[n].suggest(trial, n, config.base) for n in config.search}
    run_dir = out / "trials" / f"trial-{trial.number}"
    try:
        train_config = config.trial_config(values)
        trial.set_user_attr("values", {k: getattr(train_config, k) for k in (*values, "learning_rate")})
        value = run_trial(trial, train_config, run_dir, deadline, config.objective)
    except optuna.TrialPruned as e:
        trial.set_user_attr("seconds", round(time.monotonic() - t0, 2))
        study.tell(trial, state=TrialState.PRUNED)
        why = {"pruned": "pruned", "deadline": "stopped at the deadline"}.get(str(e), f"pruned ({e})")
        log(f"trial {trial.number}: {_shown(values)} -> {why} after {trial.user_attrs.get('epochs', 0)} epochs, "
            f"{time.monotonic() - t0:.0f} s")
        return
    except Exception:
        study.tell(trial, state=TrialState.FAIL)
        raise
    trial.set_user_attr("seconds", round(time.monotonic() - t0, 2))
    study.tell(trial, value)
    _keep_if_best(study, trial.number, run_dir, out)
    log(f"trial {trial.number}: {_shown(values)} -> {config.objective} val top-1 {value:.2%} "
        f"({time.monotonic() - t0:.0f} s)")


def _shown(values: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def _keep_if_best(study, number: int, run_dir: Path, out: Path) -> None:
    best = out / "best-run"
    if study.best_trial.number != number:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    old = out / ".best-run.old"
    shutil.rmtree(old, ignore_errors=True)
    if best.exists():
        best.rename(old)
    run_dir.rename(best)
    shutil.rmtree(old, ignore_errors=True)
