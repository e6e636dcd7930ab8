"""Hyperparameter search for ``edgesmith tune``: Optuna, Hyperband pruning, a wall-clock budget.

A study is a directory (``TUNE/``) that can be resumed at any time:

* ``journal.log``  Optuna's journal (JournalStorage over a JournalFileBackend): every trial, its
  parameters and per-epoch validation top-1, appended as they happen. Running ``tune`` again on
  the same directory continues the same study; a trial cut off by a crash or Ctrl-C is marked
  failed and its parameters are tried again first. With ``--storage URL`` the study lives in a
  database instead, shared by every worker on every machine (see :mod:`.tune_storage`: heartbeats
  fail and retry a dead worker's trial, an artifact store carries the best run between machines).
* ``tune.json``    what the study searches (base TrainConfig, search names, objective, pruner), the
  sessions (start, end, budget, trials, package versions) and the best trial so far.
* ``trials.csv`` / ``trials.md`` / ``trials.png`` / ``best.json``: see :mod:`.tune_report`.
* ``best-run/``    the run directory of the best finished trial (``edgesmith export TUNE/best-run``
  works on it); every other trial's run is deleted as soon as it is scored. A shared study's best
  trial may have run on another machine: its run comes from the artifact store.

Workers: ``workers=N`` runs N processes on this machine on one study (each with
``cpu_count // N`` TensorFlow threads unless ``TF_NUM_INTRAOP_THREADS`` says otherwise);
``max_trials`` is split between them.

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

import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgesmith.train.config import AUGMENTS, TrainConfig

from edgesmith.core.errors import BackendUnavailable, ConfigError, EdgesmithError
from edgesmith.core.fsutil import write_json
from edgesmith.core.rundir import now_iso, package_versions

from . import tune_storage as ts
from .tune_storage import STUDY_NAME, StudyStorage

OBJECTIVES = ("float", "int8")
PRUNERS = ("hyperband", "asha", "none")
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
            raise ConfigError(f"search needs at least one name: {', '.join(SEARCH)}", field="TuneConfig.search")
        for name in self.search:
            if name not in SEARCH:
                raise ConfigError(f"unknown search name {name!r}; choose from {', '.join(SEARCH)}",
                                  field="TuneConfig.search")
            if SEARCH[name].models and self.base.model not in SEARCH[name].models:
                raise ConfigError(f"search {name} applies to {', '.join(SEARCH[name].models)} only, "
                                  f"not {self.base.model}", field="TuneConfig.search")
        if len(set(self.search)) != len(self.search):
            raise ConfigError(f"search names a parameter twice: {','.join(self.search)}", field="TuneConfig.search")
        if not self.base.val_split > 0:
            raise ConfigError("tune scores trials on a validation hold-out: val_split must be > 0",
                              field="TrainConfig.val_split")
        if not self.budget_s > 0:
            raise ConfigError(f"budget_s must be longer than zero, got {self.budget_s} s", field="TuneConfig.budget_s")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown pruner {self.pruner!r}; choose one of {', '.join(PRUNERS)}")
        if self.max_trials is not None and self.max_trials < 1:
            raise ConfigError(f"max_trials must be >= 1, got {self.max_trials}", field="TuneConfig.max_trials")

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


def load_shared_config(storage: StudyStorage, *, budget_s: float, max_trials: int | None = None) -> TuneConfig:
    """The TuneConfig of the shared study ``storage.study`` (what its first worker searched), to join it
    without repeating its options.

    Raises:
        ConfigError: no such study in the database, or the database cannot be opened.
    """
    optuna = _optuna()
    try:
        study = optuna.load_study(study_name=storage.study, storage=ts.open_storage(storage, Path(".")))
    except KeyError:
        raise ConfigError(f"no study {storage.study!r} in {storage.shown()}; start it with data "
                          "(and the other options) first", field="TrainConfig.data") from None
    if ts.CONFIG_ATTR not in study.user_attrs:
        raise ConfigError(f"study {storage.study!r} in {storage.shown()} was not made by edgesmith tune")
    return TuneConfig.from_study_dict(study.user_attrs[ts.CONFIG_ATTR], budget_s=budget_s, max_trials=max_trials)


def _claim(config: TuneConfig, out: Path) -> dict:
    """Create the tune directory, or check that it holds this same study; returns ``tune.json``."""
    path = out / "tune.json"
    if path.is_file():
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("study") != config.study_dict():
            raise ConfigError(f"{out} holds a tune study with other options; resume {out} to continue "
                              "it, or choose another out", field="tune.out")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a tune directory; choose another out", field="tune.out")
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
    return ts.open_storage(StudyStorage(), Path(out))


def _open_study(optuna, config: TuneConfig, out: Path, pruner, storage: StudyStorage, *, first: bool = True,
                worker: int = 0):
    """Create or join the study; check it searches what ``config`` searches. The ``first`` opener of a
    session queues the base recipe as the first trial of a new study and, for the journal, fails and
    re-queues the trials a crash cut off (a database study finds those by their heartbeat)."""
    from optuna.trial import TrialState

    backend = ts.open_storage(storage, out)
    with ts.creation_lock(storage, backend) if first else contextlib.nullcontext():
        done = sum(s.n_trials for s in optuna.get_all_study_summaries(backend) if s.study_name == storage.study)
        sampler = optuna.samplers.TPESampler(seed=config.base.seed + done + 7919 * worker,
                                             n_startup_trials=STARTUP_TRIALS)
        study = optuna.create_study(study_name=storage.study, storage=backend, direction="maximize", sampler=sampler,
                                    pruner=pruner or _make_pruner(optuna, config), load_if_exists=True)
        recorded = study.user_attrs.get(ts.CONFIG_ATTR)
        if recorded is None and first:
            study.set_user_attr(ts.CONFIG_ATTR, config.study_dict())
        elif recorded is not None and recorded != config.study_dict():
            raise ConfigError(f"study {storage.study!r} in {storage.shown()} searches with other options; join it "
                              "with the same options (or only url and study), or choose another study",
                              field="StudyStorage.study")
        if not first:
            return study
        if not storage.shared:
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


def tune(config: TuneConfig, out: str | Path, *, storage: StudyStorage | None = None, workers: int = 1,
         pruner=None, log: Callable[[str], None] = print) -> TuneResult:
    """Search ``config.search`` around ``config.base`` until the budget (or ``max_trials``) is spent.

    Side effects: creates or continues the study (in ``out``, or in ``storage``'s database, where
    other workers may be adding trials too), trains one model per trial (TensorFlow), rewrites the
    reports in ``out`` after every trial, keeps only the best trial's run (``out/best-run``,
    downloaded from ``storage.artifacts`` when another worker trained it).

    Args:
        out: the tune directory; an existing one with the same study is continued. One per machine.
        storage: where the study lives (default: the journal in ``out``).
        workers: worker processes on this machine; ``config.max_trials`` is split between them.
        pruner: an Optuna pruner to use instead of ``config.pruner``'s (tests use one that always prunes).
        log: called with one line per trial.

    Returns:
        A :class:`TuneResult`; ``ran`` counts this session's trials over all its workers.

    Raises:
        ConfigError: ``out`` or the shared study holds a different study, or the database cannot be opened.
        BackendUnavailable: optuna, TensorFlow or the database driver is missing.
        DataError: the dataset cannot be loaded.
        EdgesmithError: a worker process died (its trial is failed and retried by the heartbeat), or the
            database was lost mid-study.
    """
    storage = storage or StudyStorage()
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", field="tune.workers")
    start = time.monotonic()
    deadline = start + config.budget_s
    optuna, out = _optuna(), Path(out)
    store = ts.artifact_store(storage.artifacts)
    record = _claim(config, out)
    with ts.database_errors(storage):
        return _session(optuna, config, out, storage, store=store, record=record, start=start, deadline=deadline,
                        pruner=pruner, workers=workers, log=log)


def _session(optuna, config: TuneConfig, out: Path, storage: StudyStorage, *, store, record: dict, start: float,
             deadline: float, pruner, workers: int, log) -> TuneResult:
    """:func:`tune` once ``out`` is claimed: open the study, run the workers, write the reports."""
    from . import tune_report

    study = _open_study(optuna, config, out, pruner, storage)
    session = {"started": now_iso(), "budget_s": config.budget_s, "trials": 0, "storage": storage.shown(),
               "study": storage.study, "workers": workers, "versions": package_versions()}
    record["sessions"].append(session)
    write_json(out / "tune.json", record)
    try:
        if workers == 1:
            stopped = _work(optuna, study, config, out, storage=storage, store=store, deadline=deadline,
                            max_trials=config.max_trials, log=log, record=record, session=session)
        else:
            stopped = _spawn(config, out, storage, pruner=pruner, workers=workers, deadline=deadline, log=log,
                             session=session)
    finally:
        shutil.rmtree(out / "trials", ignore_errors=True)
    session.update(ended=now_iso(), seconds=round(time.monotonic() - start, 1), stopped=stopped)
    ts.fail_stale(study)
    ts.sync_best(study, out, store)
    _score_kept_run(out, log)
    rows, best = tune_report.write_reports(study, config, out, record)
    return TuneResult(out, rows, best, session["trials"], stopped, session["seconds"])


def _score_kept_run(out: Path, log) -> None:
    """Score ``out/best-run`` on the test split, once the search is over (trials never read it);
    ``best.json`` and :class:`TuneResult` then carry that figure. A failure (the data moved, the run
    is locked) is said in one line and leaves the search's results as they are."""
    if (out / "best-run" / "metrics.json").is_file():
        from edgesmith.train.test_eval import evaluate_test

        try:
            evaluate_test(out / "best-run")
        except EdgesmithError as e:
            log(f"note: best-run was not scored on the test split ({e}); the end of the study's next session "
                "(tune --resume) tries again")


def _work(optuna, study, config: TuneConfig, out: Path, *, storage: StudyStorage, store, deadline: float,
          max_trials: int | None, log, record: dict | None, session: dict) -> str:
    """Run trials until ``max_trials`` or the deadline; returns why it stopped (``trials``, ``budget``)."""
    from . import tune_report

    while max_trials is None or session["trials"] < max_trials:
        ts.fail_stale(study)
        need, after = estimate(study.trials, config.base.epochs)
        if time.monotonic() + (need or 0.0) > deadline:
            return "budget"
        _run_one(optuna, study, config, out, store=store, deadline=deadline - after, log=log)
        session["trials"] += 1
        ts.sync_best(study, out, store)
        tune_report.write_reports(study, config, out, record)
    return "trials"


def _spawn(config: TuneConfig, out: Path, storage: StudyStorage, *, pruner, workers: int, deadline: float, log,
           session: dict) -> str:
    """Run ``workers`` processes of :func:`_worker` on the study; returns why the last one stopped."""
    shares = [None] * workers
    if config.max_trials is not None:
        shares = [config.max_trials // workers + (i < config.max_trials % workers) for i in range(workers)]
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS") or str(max(1, (os.cpu_count() or 1) // workers))
    left = deadline - time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        jobs = [pool.submit(_worker, config, out, storage, pruner, left_s=left, max_trials=share, index=i + 1,
                            threads=threads, parent=os.getpid())
                for i, share in enumerate(shares) if share != 0]
        results = []
        for job in jobs:
            try:
                results.append(job.result())
            except EdgesmithError:
                raise
            except Exception as e:  # BrokenProcessPool: a worker was killed
                raise EdgesmithError(f"a tune worker process died ({type(e).__name__}); its trial is failed "
                                     "and retried by the next session") from None
    session["trials"] = sum(ran for ran, _ in results)
    return "budget" if any(why == "budget" for _, why in results) else "trials"


def _worker(config: TuneConfig, out: Path, storage: StudyStorage, pruner, *, left_s: float, max_trials: int | None,
            index: int, threads: str, parent: int | None = None) -> tuple[int, str]:
    """One worker process of :func:`_spawn`: join the study and run trials; returns (trials run, why it stopped).
    It exits when the ``tune`` process that spawned it dies (its running trial is then failed and
    retried through the heartbeat, like any dead worker's)."""
    from edgesmith.core.orphan import exit_with_parent

    exit_with_parent(parent)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    deadline = time.monotonic() + left_s
    optuna = _optuna()
    with ts.database_errors(storage):
        study = _open_study(optuna, config, out, pruner, storage, first=False, worker=index)
        session = {"trials": 0}
        why = _work(optuna, study, config, out, storage=storage, store=ts.artifact_store(storage.artifacts),
                    deadline=deadline, max_trials=max_trials,
                    log=lambda line: print(f"[worker {index}] {line}", flush=True), record=None, session=session)
    return session["trials"], why


def _run_one(optuna, study, config: TuneConfig, out: Path, *, store, deadline: float, log) -> None:
    """Ask for a trial, train it (:func:`.tune_trial.run_trial`) while its heartbeat runs and tell the
    study the outcome; upload the run when it is the best so far, keep it as ``out/best-run``, else
    delete it."""
    from optuna.trial import TrialState

    from .tune_trial import run_trial

    t0 = time.monotonic()
    trial = study.ask()
    trial.set_user_attr("worker", ts.worker_name())
    if "failed_trial" in study._storage.get_trial(trial._trial_id).system_attrs:
        trial.set_user_attr("note", "retry")  # a dead worker's trial, queued again by the heartbeat check
    values = {SEARCH[n].field: SEARCH[n].suggest(trial, n, config.base) for n in config.search}
    run_dir = out / "trials" / f"trial-{trial.number}"
    try:
        with ts.heartbeat(study, trial):
            train_config = config.trial_config(values)
            trial.set_user_attr("values", {k: getattr(train_config, k) for k in (*values, "learning_rate")})
            value = run_trial(trial, train_config, run_dir, deadline, config.objective)
    except optuna.TrialPruned as e:
        trial.set_user_attr("seconds", round(time.monotonic() - t0, 2))
        study.tell(trial, state=TrialState.PRUNED)
        why = {"pruned": "pruned", "deadline": "stopped at the deadline"}.get(str(e), f"pruned ({e})")
        epochs = trial.user_attrs.get("epochs", 0)
        log(f"trial {trial.number}: {_shown(values)} -> {why} after {epochs} epoch{'s' * (epochs != 1)}, "
            f"{time.monotonic() - t0:.0f} s")
        return
    except Exception:
        study.tell(trial, state=TrialState.FAIL)
        raise
    trial.set_user_attr("seconds", round(time.monotonic() - t0, 2))
    if store is not None and ts.best_so_far(study, value):  # before `tell`: a COMPLETE best always has its run
        ts.upload_run(store, trial, run_dir)
    study.tell(trial, value)
    ts.keep_if_best(study, trial.number, run_dir, out)
    log(f"trial {trial.number}: {_shown(values)} -> {config.objective} val top-1 {value:.2%} "
        f"({time.monotonic() - t0:.0f} s)")


def _shown(values: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())
