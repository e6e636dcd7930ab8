"""What each stage writes into a run's manifest: typed records and the one writer, :func:`record_stage`.

The run directory is a contract between the stages (see :mod:`.rundir` for its layout).
``train`` and ``import`` create a run with its dataset and model; ``export`` adds the
artifacts; ``bench`` adds its reports. Each records itself with :func:`record_stage`,
which stamps the time, stores the record under ``manifest["stages"][name]`` and drops the
records (and outputs) of the stages downstream of it, since they described other files::

    train | import  ->  export  ->  bench

Example::

    record_stage(run, BenchStage(reports=["bench/results.json"]))
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import RunDirError
from .rundir import RunDir, file_record, load_manifest, new_manifest, now_iso, save_manifest

# stage -> the stages whose records a new record of it makes stale
DOWNSTREAM = {"train": ("export", "bench"), "import": ("export", "bench"), "export": ("bench",), "bench": ()}


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
    """``edgesmith export MODEL_FILE --data D``: a model trained elsewhere, measured here."""

    name: ClassVar[str] = "import"
    config: dict
    metrics: dict
    imported_from: str


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

    Side effects: rewrites ``RUN/manifest.json`` atomically. Recording ``export`` replaces
    ``manifest["artifacts"]`` with ``artifacts`` and deletes ``RUN/bench/`` (its results
    described other files).

    Returns:
        The manifest written.

    Raises:
        RunDirError: not a run directory, or ``artifacts`` given for a stage other than export.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    manifest = load_manifest(run)
    if artifacts is not None:
        if record.name != "export":
            raise RunDirError(f"only the export stage records artifacts, not {record.name}")
        manifest["artifacts"] = artifacts
    for later in DOWNSTREAM[record.name]:
        manifest["stages"].pop(later, None)
        if later == "bench" and run.bench.exists():
            shutil.rmtree(run.bench)
    manifest["stages"][record.name] = record.to_dict()
    save_manifest(run, manifest)
    return manifest


def keras_metrics(manifest: dict) -> dict:
    """The float Keras model's test metrics (``top1``, ``n_test``, ...), from train or import; ``{}`` if none."""
    stages = manifest.get("stages") or {}
    for name in ("train", "import"):
        metrics = (stages.get(name) or {}).get("metrics")
        if metrics:
            return metrics
    return {}
