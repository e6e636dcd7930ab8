"""The one table from the library's names to the CLI's flags.

Library errors name the config field or parameter at fault (``learning_rate must be in (0, 10),
got 0``) and say which with :attr:`EdgesmithError.field` (``"TrainConfig.learning_rate"``). The
CLI's error boundary (:func:`._common.errors`) shows its own flags instead: :func:`cli_message`
rewrites every name of that owner which the table knows into its flag (``--lr must be in (0, 10),
got 0``). tests/test_error_terms.py checks the table against the real Typer options.
"""
from __future__ import annotations

import re

# Owner (a library config class or function) -> the commands whose options set its names.
OWNERS: dict[str, tuple[str, ...]] = {
    "TrainConfig": ("train", "tune", "pipeline"),
    "DataSpec": ("train", "tune", "export", "bench", "pipeline"),
    "train": ("train", "pipeline"),
    "ImportConfig": ("export", "pipeline"),
    "import_model": ("export", "pipeline"),
    "resolve_run": ("export",),
    "ExportConfig": ("export", "optimize"),
    "BenchConfig": ("bench", "pipeline"),
    "bench": ("bench",),
    "gate_failures": ("bench",),
    "parse_device": ("bench", "optimize"),
    "parse_devices": ("bench", "optimize"),
    "bench_devices": ("bench",),
    "TuneConfig": ("tune",),
    "tune": ("tune",),
    "StudyStorage": ("tune",),
    "OptimizeConfig": ("optimize",),
    "optimize": ("optimize",),
    "PipelineConfig": ("pipeline",),
}

# "Owner.name" -> the flag that sets it.
FIELD_FLAGS: dict[str, str] = {
    # train/config.py
    "TrainConfig.model": "--model",
    "TrainConfig.epochs": "--epochs",
    "TrainConfig.batch_size": "--batch-size",
    "TrainConfig.learning_rate": "--lr",
    "TrainConfig.precision": "--precision",
    "TrainConfig.strategy": "--strategy",
    "TrainConfig.schedule": "--schedule",
    "TrainConfig.label_smoothing": "--label-smoothing",
    "TrainConfig.optimizer": "--optimizer",
    "TrainConfig.weight_decay": "--weight-decay",
    "TrainConfig.patience": "--patience",
    "TrainConfig.val_split": "--val-split",
    "TrainConfig.augment": "--augment",
    "TrainConfig.cutout": "--cutout",
    "TrainConfig.width": "--width",
    "TrainConfig.weights": "--weights",
    "TrainConfig.backbone_size": "--backbone-size",
    "TrainConfig.freeze_epochs": "--freeze-epochs",
    "TrainConfig.tensorboard": "--tensorboard",
    "TrainConfig.steps_per_execution": "--steps-per-execution",
    "TrainConfig.low_res_epochs": "--low-res-epochs",
    "TrainConfig.low_res": "--low-res",
    "TrainConfig.class_weight": "--class-weight",
    "TrainConfig.stream": "--stream",
    "TrainConfig.seed": "--seed",
    "TrainConfig.data": "--data",
    # edgesmith/core/data.py
    "DataSpec.source": "--data",
    "DataSpec.limit_train": "--limit-train",
    "DataSpec.limit_test": "--limit-test",
    "DataSpec.image_size": "--image-size",
    "DataSpec.resize": "--resize",
    "DataSpec.test_split": "--test-split",
    "DataSpec.strict": "--strict-data",
    "DataSpec.seed": "--seed",
    # train/loop.py
    "train.out": "--out",
    "train.overwrite": "--overwrite",
    "train.resume": "--resume",
    # importer/
    "ImportConfig.preprocess": "--preprocess",
    "ImportConfig.outputs": "--outputs",
    "ImportConfig.trust_model_code": "--trust-model-code",
    "import_model.data": "--data",
    "import_model.labels_file": "--labels",
    "import_model.out": "--out",
    "import_model.overwrite": "--overwrite",
    "resolve_run.data": "--data",
    "resolve_run.labels": "--labels",
    "resolve_run.out": "--out",
    "resolve_run.image_size": "--image-size",
    "resolve_run.resize": "--resize",
    "resolve_run.test_split": "--test-split",
    "resolve_run.strict": "--strict-data",
    # export/config.py
    "ExportConfig.formats": "--formats",
    "ExportConfig.variants": "--variants",
    "ExportConfig.targets": "--target",
    "ExportConfig.calibration": "--calibration",
    "ExportConfig.calibration_size": "--calibration-size",
    "ExportConfig.onnx_preset": "--onnx-preset",
    "ExportConfig.io_dtype": "--io-dtype",
    "ExportConfig.verify_size": "--verify-size",
    "ExportConfig.max_accuracy_drop": "--max-accuracy-drop",
    "ExportConfig.prune": "--prune",
    "ExportConfig.structured_2_4": "--structured-2-4",
    "ExportConfig.cluster": "--cluster",
    "ExportConfig.qat": "--qat",
    "ExportConfig.diagnose": "--diagnose",
    "ExportConfig.float_layers": "--float-layers",
    "ExportConfig.fallback": "--fallback",
    "ExportConfig.validation_size": "--validation-size",
    # benchmarks/
    "BenchConfig.threads": "--threads",
    "BenchConfig.batches": "--batch",
    "BenchConfig.runs": "--runs",
    "BenchConfig.warmup": "--warmup",
    "BenchConfig.batch_runs": "--batch-runs",
    "BenchConfig.seconds": "--seconds",
    "BenchConfig.rounds": "--rounds",
    "BenchConfig.limit_test": "--limit-test",
    "BenchConfig.latency_only": "--latency-only",
    "BenchConfig.data": "--data",
    "BenchConfig.runtimes": "--runtime",
    "bench.recommend_budget": "--accuracy-budget",
    "gate_failures.min_accuracy_pct": "--fail-under-accuracy",
    "gate_failures.max_latency_ms": "--fail-over-latency",
    "parse_device.spec": "--device",
    "parse_device.remote_python": "--remote-python",
    "parse_devices.specs": "--device",
    "bench_devices.parallel": "--device-parallel",
    # optimize/
    "TuneConfig.search": "--search",
    "TuneConfig.budget_s": "--budget",
    "TuneConfig.objective": "--objective",
    "TuneConfig.pruner": "--pruner",
    "TuneConfig.max_trials": "--trials",
    "tune.out": "--out",
    "tune.workers": "--workers",
    "StudyStorage.url": "--storage",
    "StudyStorage.study": "--study",
    "StudyStorage.artifacts": "--artifacts",
    "StudyStorage.heartbeat_s": "--heartbeat",
    "StudyStorage.grace_s": "--grace",
    "OptimizeConfig.budget_s": "--budget",
    "OptimizeConfig.formats": "--formats",
    "OptimizeConfig.variants": "--variants",
    "OptimizeConfig.calibrations": "--calibrations",
    "OptimizeConfig.forms": "--forms",
    "OptimizeConfig.fallback": "--fallback",
    "OptimizeConfig.calibration_size": "--calibration-size",
    "OptimizeConfig.verify_size": "--verify-size",
    "OptimizeConfig.validation_size": "--validation-size",
    "OptimizeConfig.accuracy_budget": "--accuracy-budget",
    "OptimizeConfig.board": "--board",
    "OptimizeConfig.max_latency_ms": "--max-latency",
    "optimize.out_dir": "--out",
    "PipelineConfig.model_import": "--model-file",
    "PipelineConfig.out": "--out",
    "PipelineConfig.overwrite": "--overwrite",
}


def cli_message(message: str, field: str | None) -> str:
    """``message`` with the names of ``field``'s owner (``"TrainConfig.learning_rate"`` ->
    owner ``TrainConfig``) that :data:`FIELD_FLAGS` knows replaced by their flags, bare
    (``learning_rate``) or qualified (``TrainConfig.learning_rate``), a switch's ``=True`` dropped
    (``overwrite=True`` -> ``--overwrite``); unchanged without a field."""
    if not field or "." not in field:
        return message
    owner = field.split(".", 1)[0]
    names = {k.split(".", 1)[1]: f for k, f in FIELD_FLAGS.items() if k.startswith(owner + ".")}
    if not names:
        return message
    # longest first, so ``low_res_epochs`` is not read as ``low_res`` + ``_epochs``
    pattern = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.sub(rf"(?<![\w./\\-])(?:{re.escape(owner)}\.)?({pattern})(?:=True)?(?![\w/\\-])",
                  lambda m: names[m.group(1)], message)
