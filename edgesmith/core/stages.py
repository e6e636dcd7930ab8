"""What each stage writes into a run's manifest: typed records and the one writer, :func:`record_stage`.

The run directory is a contract between the stages (see :mod:`.rundir` for its layout).
``train`` and ``import`` create a run with its dataset and model; ``export`` adds
artifacts; ``bench`` adds its reports. Each records itself with :func:`record_stage`,
which, holding the run's lock (:mod:`.runlock`) and re-reading the manifest, stamps the
time, stores the record under ``manifest["stages"][name]`` and invalidates what lies
downstream of it::

    train | import  ->  export  ->  bench

An export adds to the run: its artifacts replace those of the same name or file, the others
stay, and the bench results are kept but marked stale (they may describe files it replaced).

Example::

    record_stage(run, BenchStage(reports=["bench/results.json"]))
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import RunDirError
from .fsutil import write_text
from .rundir import RunDir, file_record, load_manifest, new_manifest, now_iso, save_manifest
from .runlock import run_lock

# stage -> the stages whose records a new record of it makes stale
DOWNSTREAM = {"train": ("export", "bench"), "import": ("export", "bench"), "export": ("bench",), "bench": ()}
STALE_NOTE = "> **Stale:** "  # the first line of RUN/bench/report.md once an export outdated it


@dataclass(frozen=True)
class StageRecord:
    """Base of the stage records: ``name`` is the key under ``manifest["stages"]``."""

    name: ClassVar[str] = ""

    def to_dict(self) -> dict:
        """The JSON record, with ``finished`` (UTC, ISO 8601) first."""
        return {"finished": now_iso(), **asdict(self)}


@dataclass(frozen=True)
class TrainStage(StageRecord):
    """``edgesmith train``: the TrainConfig as a dict, the precision policy used, the test metrics."""

    name: ClassVar[str] = "train"
    config: dict
    precision_policy: str
    metrics: dict


@dataclass(frozen=True)
class ImportStage(StageRecord):
    """``edgesmith export MODEL_FILE --data D``: a model trained elsewhere, measured here.

    ``removed_layers``: the layers that act only in training (augmentation, dropout, noise)
    taken out of it at import, ``{"name", "class", "as"}`` each (``as``: ``removed``, or what
    the layer was frozen into).
    """

    name: ClassVar[str] = "import"
    config: dict
    metrics: dict
    imported_from: str
    removed_layers: list = field(default_factory=list)


@dataclass(frozen=True)
class ExportStage(StageRecord):
    """``edgesmith export``: its config, and what each source model (base, pruned, qat, ...) took."""

    name: ClassVar[str] = "export"
    config: dict
    sources: dict


@dataclass(frozen=True)
class BenchStage(StageRecord):
    """``edgesmith bench``: run-relative paths of the reports written."""

    name: ClassVar[str] = "bench"
    reports: list = field(default_factory=list)


def model_record(path: Path, rel: str, *, architecture: str, params: int, image_shape: tuple[int, int, int],
                 num_classes: int, format: str = "keras", **extra: Any) -> dict:
    """Manifest entry of a run's float Keras model (``manifest["model"]``).

    Args:
        path: the saved model file; ``rel`` its run-relative name (``model.keras``).
        image_shape: ``(H, W, C)`` of its input, which takes float32 pixels 0-255 (NHWC).
        num_classes: width of its ``(N, K) float32`` probability output.
        extra: further fields (e.g. ``source`` for an imported model).
    """
    return file_record(path, rel, format=format, precision="fp32", architecture=architecture, params=int(params),
                       input={"shape": [None, *image_shape], "dtype": "float32", "layout": "NHWC",
                              "value_range": [0, 255]},
                       output={"shape": [None, int(num_classes)], "dtype": "float32", "kind": "probabilities"},
                       **extra)


def create_run_manifest(run: RunDir, name: str, *, dataset: dict, model: dict, record: StageRecord) -> dict:
    """Write the first manifest of a run being built at ``run`` (e.g. a temporary directory).

    Args:
        name: the run's final directory name (``run`` may still be a temporary sibling).
        dataset: the dataset spec (:meth:`DataSpec.to_dict`) plus ``class_names``,
            ``image_shape``, ``n_train``, ``n_val``, ``n_test``.
        model: :func:`model_record` of the run's model.
        record: the creating stage (:class:`TrainStage` or :class:`ImportStage`).

    Returns:
        The manifest written.
    """
    manifest = new_manifest(RunDir(run.root.parent / name), dataset)
    manifest["model"] = model
    manifest["stages"][record.name] = record.to_dict()
    save_manifest(run, manifest)
    return manifest


def record_stage(run: RunDir | str | Path, record: StageRecord, *, artifacts: list[dict] | None = None) -> dict:
    """Record ``record`` in the run's manifest and invalidate the stages downstream of it.

    Side effects: under the run's lock (:func:`.runlock.run_lock`, waiting for another writer),
    re-reads ``RUN/manifest.json`` and rewrites it atomically, so a record made by another
    command meanwhile is kept. Recording ``export`` merges ``artifacts`` into
    ``manifest["artifacts"]`` (:func:`merge_artifacts`: an entry of the same ``name`` or
    ``file`` is replaced, the others stay while their file exists) and, when a file is new or its
    bytes changed, marks the bench record ``stale`` with a ``stale_reason`` (also the first line
    of ``RUN/bench/report.md``) instead of deleting ``RUN/bench/``. Recording ``train`` or
    ``import`` drops the export and bench records and deletes ``RUN/bench/``.

    Returns:
        The manifest written.

    Raises:
        RunDirError: not a run directory, or ``artifacts`` given for a stage other than export.
        RunLockedError: another command held the run for longer than the lock's wait.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    if artifacts is not None and record.name != "export":
        raise RunDirError(f"only the export stage records artifacts, not {record.name}")
    load_manifest(run)  # not a run: its own error, before a lock file is made
    with run_lock(run.root, what=record.name):
        manifest = load_manifest(run)  # inside the lock: what the last writer left
        entry = record.to_dict()
        if record.name == "export":
            changed = _changed(manifest.get("artifacts") or [], artifacts or [])
            merged, kept = merge_artifacts(run, manifest.get("artifacts") or [], artifacts or [])
            manifest["artifacts"] = merged
            if kept:
                entry["kept"] = [a.get("name") for a in kept]
                old_sources = (manifest["stages"].get("export") or {}).get("sources") or {}
                used = {a.get("source") for a in kept}
                entry["sources"] = {**{k: v for k, v in old_sources.items() if k in used}, **entry["sources"]}
            _mark_bench_stale(run, manifest, changed)
        else:
            for later in DOWNSTREAM[record.name]:
                manifest["stages"].pop(later, None)
                if later == "bench" and run.bench.exists():
                    shutil.rmtree(run.bench)
        manifest["stages"][record.name] = entry
        save_manifest(run, manifest)
    return manifest


def merge_artifacts(run: RunDir, old: list[dict], new: list[dict]) -> tuple[list[dict], list[dict]]:
    """The run's artifact list after an export that made ``new``: ``(merged, kept)``.

    ``new`` entries replace the ``old`` ones of the same ``name`` or ``file``; the other old
    entries are kept (``kept``, after ``new``: a kept file's float parent may be new) while their
    file is still in the run, with their sha256, so a reader still refuses a file changed since.
    """
    names = {a.get("name") for a in new}
    files = {a.get("file") for a in new}
    kept = [a for a in old if a.get("name") not in names and a.get("file") not in files
            and a.get("file") and (run.root / a["file"]).is_file()]
    return list(new) + kept, kept


def _changed(old: list[dict], new: list[dict]) -> list[dict]:
    """The ``new`` entries that are not byte-for-byte an ``old`` one (same name, file and sha256)."""
    same = {(a.get("name"), a.get("file"), a.get("sha256")) for a in old}
    return [a for a in new if (a.get("name"), a.get("file"), a.get("sha256")) not in same]


def _mark_bench_stale(run: RunDir, manifest: dict, changed: list[dict]) -> None:
    """Keep the bench results of an earlier export, marked stale (record and ``report.md``) when
    the export ``changed`` a file or added one; an export that remade the same bytes leaves them."""
    bench = manifest["stages"].get("bench")
    if not bench or not changed:
        return
    files = ", ".join(a["file"] for a in changed if a.get("file"))
    bench["stale"] = True
    bench["stale_reason"] = (f"export at {now_iso()} wrote {files} after this bench ran: its results do not "
                             f"cover the new files (run `edgesmith bench {run.root}` again)")
    report = run.bench / "report.md"
    if report.is_file():
        lines = report.read_text(encoding="utf-8").splitlines()
        if lines and lines[0].startswith(STALE_NOTE):
            lines = lines[2:] if len(lines) > 1 and not lines[1].strip() else lines[1:]
        write_text(report, "\n".join([STALE_NOTE + bench["stale_reason"], "", *lines]) + "\n")


def keras_metrics(manifest: dict) -> dict:
    """The float Keras model's test metrics (``top1``, ``n_test``, ...), from train or import; ``{}`` if none."""
    stages = manifest.get("stages") or {}
    for name in ("train", "import"):
        metrics = (stages.get(name) or {}).get("metrics")
        if metrics:
            return metrics
    return {}
