"""Train (or import) -> export -> bench in one call: what ``edgesmith pipeline`` and ``make demo`` run.

The stages pass nothing but the run directory to each other (ARCHITECTURE.md); this module only
orders them, so a Python user gets the same run a ``pipeline`` command makes::

    from edgesmith.core.data import DataSpec
    from edgesmith.export import ExportConfig
    from edgesmith.benchmarks import bench_config
    from edgesmith.optimize.pipeline import PipelineConfig, run_pipeline
    from edgesmith.train import TrainConfig

    result = run_pipeline(PipelineConfig(
        ExportConfig(calibration_size=64), bench_config("quick"),
        train=TrainConfig(DataSpec("synthetic", limit_train=600), model="cnn", epochs=2),
        out="runs/demo"))
    for c in result.bench["comparisons"]:
        print(c["verdict"])      # e.g. "int8 is 2.37x faster at +0.00 pt and 27% of the size on litert-cpu ..."

TensorFlow (the ``[train]`` extra) is imported when a stage that needs it runs, not here.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgesmith.core.errors import ConfigError

if TYPE_CHECKING:
    from edgesmith.benchmarks import BenchConfig
    from edgesmith.export import ExportConfig
    from edgesmith.train import TrainConfig

STAGES = ("train", "import", "export", "bench")


@dataclass(frozen=True)
class ModelImport:
    """Bring your own model instead of training (:func:`edgesmith.importer.resolve_run`).

    Attributes:
        path: a ``.keras`` / ``.h5`` file or SavedModel directory to import; a run directory
            is used as it is (nothing imported).
        data: the dataset to measure and calibrate on (``synthetic``, ``cifar10`` or a folder).
        labels: class names, one per line, in the model's output order (``None``: the
            dataset's class folders).
        preprocess, outputs, trust_model_code: as :func:`edgesmith.importer.import_model`.
        limit_train, limit_test, seed, image_size, resize, test_split, strict: shape the dataset
            as :class:`~edgesmith.core.data.DataSpec` does (``image_size`` ``(H, W)`` px; ``None``
            and a folder of mixed sizes: the model's input size).
    """

    path: Path
    data: str | None
    labels: Path | None = None
    preprocess: str = "none"
    outputs: str = "auto"
    trust_model_code: bool = False
    limit_train: int | None = None
    limit_test: int | None = None
    seed: int = 0
    image_size: tuple[int, int] | None = None
    resize: str = "squash"
    test_split: float | None = None
    strict: bool = False


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline: where the model comes from, then how to export and bench it.

    Attributes:
        export: the export stage's config.
        bench: the bench stage's config (:func:`edgesmith.benchmarks.bench_config`).
        train: train this config (exactly one of ``train`` and ``model_import``).
        model_import: import a model file instead of training.
        out: the run directory to create (``None``: ``runs/<model>-<timestamp>`` for a
            training, :func:`edgesmith.importer.default_out` for an import).
        overwrite: replace ``out`` if it exists.

    Raises:
        ConfigError: neither or both of ``train`` and ``model_import``.
    """

    export: "ExportConfig"
    bench: "BenchConfig"
    train: "TrainConfig | None" = None
    model_import: ModelImport | None = None
    out: Path | None = None
    overwrite: bool = False

    def __post_init__(self):
        if (self.train is None) == (self.model_import is None):
            raise ConfigError("a pipeline either trains (train) or imports a model file (model_import), "
                              "exactly one of them", field="PipelineConfig.model_import")


@dataclass
class PipelineResult:
    """What a pipeline made, filled stage by stage.

    Attributes:
        run: the run directory (``None`` on a non-chief worker of a multi-worker training,
            which writes nothing and stops there).
        stages: the stages done, in order (of :data:`STAGES`).
        data_report: the dataset report of a training (``RUN/data_report.json``,
            :func:`edgesmith.core.datareport.data_report`).
        imported: a model file was imported just now (``False`` for a training or a run
            directory given as ``model_import.path``).
        artifacts: the export records (one per file, see :func:`edgesmith.export.export`).
        bench: the bench report (``RUN/bench/results.json``'s content).
        report_files: what the bench wrote, by kind (``json``, ``csv``, ``md``, ``png``).
    """

    run: Path | None = None
    stages: list[str] = field(default_factory=list)
    data_report: dict | None = None
    imported: bool = False
    artifacts: list[dict] = field(default_factory=list)
    bench: dict | None = None
    report_files: dict[str, Path] = field(default_factory=dict)


def run_pipeline(config: PipelineConfig, *, say: Callable[[str], Any] | None = None,
                 on_stage: Callable[[str, PipelineResult], Any] | None = None) -> PipelineResult:
    """Train or import, export, then bench, into one run directory.

    Side effects: writes the run directory (``config.out``): the model and its records, then
    ``artifacts/``, then ``bench/``, each stage recorded in ``manifest.json``.

    Args:
        config: what to run.
        say: receives the stages' progress lines (export's and bench's), one string each.
        on_stage: called after each stage with its name (of :data:`STAGES`) and the result so
            far, so a caller can show a stage's outcome before the next one starts.

    Returns:
        The :class:`PipelineResult`; ``run`` is None (and nothing else done) on a non-chief
        worker of a multi-worker training.

    Raises:
        ConfigError, DataError: bad options or data (before anything is written where
            the stage can tell). ParityError: an artifact over ``export.max_accuracy_drop``
            (its ``diagnosis`` attribute names the worst layers). ModelFileError,
            UnsafeModelError, ModelMismatchError: as :func:`edgesmith.importer.resolve_run`.
        RunDirError: as the stages raise it.
    """
    from edgesmith.benchmarks import bench
    from edgesmith.export import export

    say = say or (lambda line: None)
    done = on_stage or (lambda stage, res: None)
    result = PipelineResult()
    if config.train is not None:
        _train(config, result)
    else:
        _import(config, result)
    done(result.stages[-1], result)
    if result.run is None:
        return result
    result.artifacts = export(result.run, config.export, log=say)
    result.stages.append("export")
    done("export", result)
    result.bench, result.report_files = bench(result.run, config.bench, progress=say)
    result.stages.append("bench")
    done("bench", result)
    return result


def _train(config: PipelineConfig, result: PipelineResult) -> None:
    from edgesmith.train import train

    tc = config.train
    out = config.out or Path("runs") / f"{tc.model}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    run = train(tc, out, overwrite=config.overwrite)
    result.stages.append("train")
    if run is not None:  # train() wrote what was used and skipped, and the split (RUN/data_report.*, split.json)
        result.run = run.root
        result.data_report = json.loads((run.root / "data_report.json").read_text())


def _import(config: PipelineConfig, result: PipelineResult) -> None:
    from edgesmith.importer import resolve_run

    m = config.model_import
    run, result.imported = resolve_run(m.path, data=m.data, labels=m.labels, preprocess=m.preprocess,
                                       outputs=m.outputs, trust_model_code=m.trust_model_code, out=config.out,
                                       overwrite=config.overwrite, limit_train=m.limit_train,
                                       limit_test=m.limit_test, seed=m.seed, image_size=m.image_size,
                                       resize=m.resize, test_split=m.test_split, strict=m.strict)
    result.run = run.root
    result.stages.append("import")
