"""Where an ``edgesmith tune`` study lives: a journal file in the tune directory, or a database
many workers share, and the artifact store that carries the best trial's run between machines.

* **Journal** (the default): ``TUNE/journal.log``, one machine. A trial cut off by a crash is
  failed and re-queued when the next session starts (nobody else can be running it).
* **Database** (``--storage URL --study NAME``): Optuna's RDBStorage over any SQLAlchemy URL,
  PostgreSQL first (``postgresql+psycopg://user:password@host:5432/db``). Every worker that runs
  ``edgesmith tune`` with the same URL and study name adds trials to one study. Each running
  trial records a heartbeat every ``heartbeat_s``; a trial whose heartbeat is older than
  ``grace_s`` (its worker died or lost the network) is failed by the next worker that asks for
  a trial, and a copy with the same parameters is queued (Optuna's RetryFailedTrialCallback), so
  no trial stays RUNNING.
* **Artifacts** (``--artifacts DIR``): an Optuna ``FileSystemArtifactStore`` on a path every
  worker mounts (NFS, SMB, a cluster file system). Each trial that finishes as the best so far
  uploads its run directory there, one artifact per file, and records the ids in its user
  attribute ``artifacts`` (relative path -> id); any worker, on any machine, downloads the best
  trial's run into its own ``TUNE/best-run``. The store is chosen from the text by
  :func:`artifact_store`, so an object store (``s3://``, ``gs://``) is one more branch there.
"""
from __future__ import annotations

import inspect
import os
import shutil
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgesmith.core.errors import BackendUnavailable, ConfigError, EdgesmithError

STUDY_NAME = "edgesmith-tune"
HEARTBEAT_S = 30  # a running trial's heartbeat period, s
GRACE_S = 120  # a trial whose heartbeat is older than this is failed and retried, s
CONNECT_TIMEOUT_S = 15  # a database server that does not answer within this is unreachable, s
MAX_RETRY = 3  # retries of one trial's parameters before they are given up
CONFIG_ATTR = "edgesmith"  # the study's user attribute that holds TuneConfig.study_dict()


@dataclass(frozen=True)
class StudyStorage:
    """Where the study lives.

    Attributes:
        url: an SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db``, ``sqlite:///tune.db``),
            or None for the journal file ``TUNE/journal.log``.
        study: the study's name in the database (one database holds many studies).
        artifacts: where the best trial's run is uploaded (a directory every worker mounts), or
            None (each machine keeps only the best runs it trained itself).
        heartbeat_s: heartbeat period of a running trial, s (database only).
        grace_s: a trial whose last heartbeat is older is failed and retried, s (> heartbeat_s).
    """

    url: str | None = None
    study: str = STUDY_NAME
    artifacts: str | None = None
    heartbeat_s: int = HEARTBEAT_S
    grace_s: int = GRACE_S

    def __post_init__(self):
        if not self.study or not self.study.strip():
            raise ConfigError("study needs a name", field="StudyStorage.study")
        if self.url is not None and "://" not in self.url:
            raise ConfigError(f"url takes a database URL such as postgresql+psycopg://user:password@host/db, "
                              f"got {self.url!r}", field="StudyStorage.url")
        if not 0 < self.heartbeat_s < self.grace_s:
            raise ConfigError(f"the heartbeat period ({self.heartbeat_s} s) must be shorter than the grace period "
                              f"({self.grace_s} s)")

    @property
    def shared(self) -> bool:
        """True for a database study (several workers, heartbeats)."""
        return self.url is not None

    def shown(self) -> str:
        """The storage for messages: the URL without its password, or ``journal``."""
        return "journal.log" if self.url is None else redact(self.url)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: show the scheme only
        return url.split("://", 1)[0] + "://..."


def open_storage(storage: StudyStorage, out: Path):
    """The Optuna storage of ``storage`` (the journal in ``out`` when ``storage.url`` is None).

    Raises:
        BackendUnavailable: the database driver (e.g. psycopg) is not installed.
        ConfigError: the database cannot be reached or refuses the credentials (one line, no password).
    """
    import optuna

    if storage.url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(Path(out) / "journal.log")))
    import warnings

    new = "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback" if new else "RetryFailedTrialCallback")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning: heartbeats, in Optuna since 2.8
            callback = retry(max_retry=MAX_RETRY)
            pg = storage.url.startswith("postgres")
            engine = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}} if pg else {}
            return optuna.storages.RDBStorage(
                storage.url, engine_kwargs=engine, heartbeat_interval=storage.heartbeat_s, grace_period=storage.grace_s,
                **{"heartbeat_stale_trial_callback" if new else "failed_trial_callback": callback})
    except ImportError as e:  # the SQLAlchemy dialect's driver
        raise BackendUnavailable(f"url {storage.shown()} needs a database driver ({e.name or e}): "
                                 "pip install 'edgesmith[train]' (psycopg for PostgreSQL)",
                                 field="StudyStorage.url") from None
    except Exception as e:
        raise ConfigError(f"cannot open the study storage {storage.shown()}: {_first_line(e)}") from None


@contextmanager
def creation_lock(storage: StudyStorage, backend):
    """Hold a lock that serializes opening a shared study: create it, check its options, queue the
    base recipe. Two workers started at the same instant would otherwise both see an empty study
    and both queue the baseline.

    PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) keyed on the study name, on a
    connection of its own, released on exit (or by the server when the connection drops). Other
    databases and the journal (one machine, one ``tune`` per directory) take no lock.
    """
    if not (storage.shared and storage.url.startswith("postgres")):
        yield
        return
    import hashlib

    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(f"edgesmith-tune:{storage.study}".encode()).digest()[:8], "big", signed=True)
    with backend.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextmanager
def database_errors(storage: StudyStorage):
    """Turn a database that fails mid-study (server gone, network down) into one EdgesmithError line."""
    try:
        yield
    except EdgesmithError:
        raise
    except Exception as e:
        if storage.url is None or type(e).__module__.split(".")[0] != "sqlalchemy":
            raise
        raise EdgesmithError(f"lost the study storage {storage.shown()}: {_first_line(e)}; the study is kept "
                             "there: run the same command again to continue") from None


def _first_line(e: BaseException) -> str:
    """The driver's own message (wrong password, connection refused), first line, without SQLAlchemy's boilerplate."""
    inner = getattr(e, "orig", None) or e
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__


def artifact_store(where: str | None):
    """The Optuna artifact store at ``where`` (a directory, created if missing), or None.

    Raises:
        ConfigError: a scheme that is not supported yet (object stores: ``s3://``, ``gs://``).
    """
    if where is None:
        return None
    if "://" in where and not where.startswith("file://"):
        raise ConfigError(f"artifacts takes a directory every worker mounts; {where.split('://')[0]}:// "
                          "object storage is not supported yet", field="StudyStorage.artifacts")
    from optuna.artifacts import FileSystemArtifactStore

    path = Path(where.removeprefix("file://"))
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(path)


def upload_run(store, trial, run_dir: Path) -> dict[str, str]:
    """Upload every file of ``run_dir`` to ``store`` as artifacts of ``trial``; returns relative path -> id
    (also set as the trial's user attribute ``artifacts``)."""
    from optuna.artifacts import upload_artifact

    ids = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        ids[path.relative_to(run_dir).as_posix()] = upload_artifact(artifact_store=store, file_path=str(path),
                                                                    study_or_trial=trial)
    trial.set_user_attr("artifacts", ids)
    return ids


def download_run(store, ids: dict[str, str], dest: Path) -> None:
    """Download the artifacts ``ids`` (relative path -> id) into the new directory ``dest``; nothing is left
    of a failed download."""
    from optuna.artifacts import download_artifact

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, artifact_id in ids.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            download_artifact(artifact_store=store, file_path=str(tmp / rel), artifact_id=artifact_id)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def worker_name() -> str:
    """This worker in the trials table: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat(study, trial):
    """A context manager that records ``trial``'s heartbeat every ``heartbeat_s`` while it runs
    (nothing for the journal, which has no heartbeat)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, study._storage)


def fail_stale(study) -> None:
    """Fail the trials whose worker stopped beating (and queue their retries); nothing for the journal."""
    import warnings

    from optuna.storages import fail_stale_trials
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning: in Optuna since 2.9
            fail_stale_trials(study)


# --- the best run, in TUNE/best-run ---------------------------------------------------------

MARKER = ".best-run.json"  # in TUNE/: which trial TUNE/best-run holds


def best_so_far(study, value: float) -> bool:
    """Whether ``value`` ties or beats every finished trial of ``study`` (maximized)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return not done or value >= max(t.value for t in done)


def best_run_trial(out: Path) -> int | None:
    """The trial whose run ``out/best-run`` holds, or None."""
    import json

    try:
        return json.loads((Path(out) / MARKER).read_text(encoding="utf-8"))["trial"]
    except (OSError, ValueError, KeyError):
        return None


class _Lock:
    """An exclusive lock on ``out/.best-run.lock`` (workers of one machine share ``out``)."""

    def __init__(self, out: Path):
        self.path = Path(out) / ".best-run.lock"

    def __enter__(self):
        import fcntl

        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.f.close()  # releases the lock


def _swap_in(src: Path, out: Path, number: int) -> None:
    """Make the complete run directory ``src`` into ``out/best-run`` (holding the lock)."""
    from edgesmith.core.fsutil import write_json

    best, old = out / "best-run", out / f".best-run.{os.getpid()}.old"
    shutil.rmtree(old, ignore_errors=True)
    if best.exists():
        best.rename(old)
    src.rename(best)
    shutil.rmtree(old, ignore_errors=True)
    write_json(out / MARKER, {"trial": number})


def keep_if_best(study, number: int, run_dir: Path, out: Path) -> None:
    """Move trial ``number``'s run to ``out/best-run`` when it is the study's best, else delete it."""
    if study.best_trial.number != number:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    with _Lock(out):
        _swap_in(run_dir, out, number)


def sync_best(study, out: Path, store) -> None:
    """Download the study's best trial's run into ``out/best-run`` from ``store`` when another
    worker trained it (nothing without a store, a finished trial or uploaded files)."""
    from optuna.trial import TrialState

    if store is None or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    best = study.best_trial
    ids = best.user_attrs.get("artifacts")
    if not ids or best_run_trial(out) == best.number:
        return
    with _Lock(out):
        if best_run_trial(out) == best.number:
            return
        new = out / f".best-run.{os.getpid()}.new"
        shutil.rmtree(new, ignore_errors=True)
        download_run(store, ids, new)
        _swap_in(new, out, best.number)
