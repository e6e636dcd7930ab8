"""The export stage: every artifact of a trained run, planned, converted, verified and recorded.

``export`` runs four steps:

1. plan: :meth:`ExportConfig.plan` lists the artifacts from the backends' declared
   variants (:mod:`.tflite`, :mod:`.onnx`), float parents first;
2. convert: each artifact's variant converts its Keras source model (:mod:`.sources`:
   base, pruned, clustered, QAT) and embeds the labels + input spec in the file;
3. verify: every file is run through :func:`edgesmith.runtime.load` on held-out test
   images and compared with the float Keras model (and with its own source model); an
   artifact that disagrees beyond the thresholds, or loses more top-1 than the budget,
   fails the export and nothing is written;
4. record: :func:`edgesmith.core.stages.record_stage` adds the artifacts and an
   :class:`~edgesmith.core.stages.ExportStage` to the manifest (marking the bench results stale).

The whole export holds the run's lock (:mod:`edgesmith.core.runlock`): a second writer waits.

Targets (:mod:`.targets`): ``config.targets`` (default ``auto``, this CPU) decide the int8
ONNX form(s); each quantized artifact records the ``targets`` it was made for and every
artifact the CPU it was ``verified_on`` (model, arch, int8-relevant ISA flags), since an
int8 file's accuracy can depend on the CPU that runs it.

Every non-float-parent artifact records as its ``float_parent`` the base fp32 artifact of
its format, so accuracy deltas are always against the original float model.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgesmith.core.data import DataSpec, Split, load_split
from edgesmith.core.datareport import check_split
from edgesmith.core.errors import DataError, ParityError
from edgesmith.core.fsutil import atomic_path
from edgesmith.core.rundir import RunDir, carry_over, file_record, require_model, stage
from edgesmith.core.runlock import locks_run
from edgesmith.core.stages import ExportStage, record_stage
from edgesmith.importer.keras3 import require_tf_keras

from .config import (ARTIFACTS, DEFAULT_VARIANTS, FORMATS, SOURCES, VARIANTS, ExportConfig, Planned,
                     artifact_name, file_name)
from .fidelity import accuracy_drop_pts, compare, gzip_bytes, weight_stats
from .fold import fold_rescaling
from .embed import embed_metadata
from .micro import MICRO_VARIANT, check_micro, require_tflm
from .sources import build_sources
from .targets import Machine, resolve_targets
from .variants import Job

__all__ = ["export", "ExportConfig", "ARTIFACTS", "FORMATS", "VARIANTS", "SOURCES", "DEFAULT_VARIANTS",
           "Planned", "artifact_name", "file_name"]


@dataclass
class _Export:
    """What every artifact of one export is checked against, and where it is staged."""

    run: RunDir
    manifest: dict
    config: ExportConfig
    calib: Split
    verify_x: np.ndarray
    verify_y: np.ndarray
    reference: np.ndarray
    labels: list[str]
    models: dict
    source_refs: dict
    sources: dict
    machine: Machine
    staging: Path | None = None
    scratch: Path | None = None
    validation: object = None  # fallback.Validation for --fallback auto
    selective: dict = field(default_factory=dict)  # artifact -> float layers (+ fallback log)


def _predict(model, images: np.ndarray) -> np.ndarray:
    return model.predict(images.astype(np.float32), batch_size=256, verbose=0)


def _with_run_smoothing(config: ExportConfig, manifest: dict) -> ExportConfig:
    """Fine-tunes left at ``label_smoothing=None`` train with the run's own loss (0 for imported runs)."""
    smoothing = float((stage(manifest, "train").get("config") or {}).get("label_smoothing") or 0)
    tunes = {k: getattr(config, k) for k in ("prune_tune", "cluster_tune", "qat_tune")}
    return replace(config, **{k: replace(t, label_smoothing=smoothing) for k, t in tunes.items()
                              if t.label_smoothing is None})


def _prepare(run: RunDir, config: ExportConfig, log) -> _Export:
    """Load the run's model and data, build the source models and their reference outputs."""
    from edgesmith.importer import savedmodel  # noqa: F401  registers SavedModelLayer (imported Keras 3 runs)
    from edgesmith.tfshim import keras

    manifest, model_path = require_model(run)
    require_tf_keras(manifest, config)  # fine-tunes need tf_keras layers, not an imported graph
    model = keras.models.load_model(model_path, compile=False)
    if config.float_layers:
        from .fallback import check_layers
        check_layers(model, config.float_layers)  # an unknown name fails before any conversion
    spec = DataSpec.from_dict(manifest["dataset"])
    check_split(spec, run.root)  # a folder split here must still split as trained: no test image in calibration
    calib = load_split(replace(spec, limit_train=config.calibration_size, seed=spec.seed + 7), "train")
    if len(calib) < config.calibration_size:
        raise DataError(f"calibration_size {config.calibration_size} asks for more images than the "
                        f"training split holds ({len(calib)})", field="ExportConfig.calibration_size")
    test = load_split(spec, "test")
    verify_x, verify_y = test.images[:config.verify_size], test.labels[:config.verify_size]
    reference = _predict(model, verify_x)
    config = _with_run_smoothing(config, manifest)
    models, sources = build_sources(model, config, spec, log)
    # Same function, one op fewer: the input Rescaling moves into the first conv's kernel
    # (export/fold.py; a no-op for models where that is not exact, e.g. QAT-wrapped ones).
    models = {s: fold_rescaling(m) for s, m in models.items()}
    source_refs = {s: reference if s == "base" else _predict(m, verify_x) for s, m in models.items()}
    for s, info in sources.items():
        info["keras_top1"] = float((source_refs[s].argmax(1) == verify_y).mean())
    validation = None
    if config.fallback == "auto":
        from .fallback import validation_split
        validation = validation_split(spec, calib.images, config.validation_size, model)
    return _Export(run, manifest, config, calib, verify_x, verify_y, reference, manifest["dataset"]["class_names"],
                   models, source_refs, sources, Machine.here(), validation=validation)


def _selective(p: Planned, c: ExportConfig) -> bool:
    """A PTQ int8 file some of whose layers may stay float (QAT files carry their own ranges)."""
    return p.variant == "int8" and "qat" not in p.source and bool(c.float_layers or c.fallback == "auto")


def _convert(p: Planned, ex: _Export, log) -> tuple[str, float]:
    """Write one artifact at ``staging / p.file``; returns its method line and the seconds it took."""
    c = ex.config
    job = Job(model=ex.models[p.source], path=ex.staging / p.file, source=p.source,
              calibration=ex.calib.images, labels=ex.labels, io_dtype=c.io_dtype,
              calibration_method=c.calibration, onnx_preset=p.onnx_preset or c.onnx_preset or "u8s8",
              sibling=lambda fmt, v: ex.staging / file_name(p.source, fmt, v), scratch=ex.scratch)
    started = time.perf_counter()
    method = p.spec.describe(job)
    if _selective(p, c):
        from .fallback import make_int8
        rec = ex.selective[p.name] = make_int8(
            job, p.format, c.float_layers, fallback=c.fallback, budget=c.max_accuracy_drop,
            validation=ex.validation, verify=(ex.verify_x, ex.verify_y), log=log)
        if rec["float_layers"]:
            method += f"; kept in float: {', '.join(rec['float_layers'])}"
    else:
        p.spec.convert(job)
    resize = ex.manifest["dataset"].get("resize", "squash")  # the policy training decoded with, for load_image
    if resize != "squash" and str(p.file).endswith((".tflite", ".onnx")):
        embed_metadata(ex.staging / p.file, labels=ex.labels, resize=resize)
    return method, time.perf_counter() - started


def _verify(p: Planned, ex: _Export):
    """Run the file on the verification images; returns its runner and fidelity vs the float Keras model.

    Raises:
        ParityError: top-1 agreement with its own Keras source model below the floor.
    """
    from edgesmith.runtime import load

    runner = load(ex.staging / p.file, target="cpu")
    pred = runner.predict(ex.verify_x)
    fidelity = compare(ex.reference, pred, ex.verify_y)
    fidelity["accuracy_drop_pts"] = accuracy_drop_pts(fidelity)
    own = fidelity if p.source == "base" else compare(ex.source_refs[p.source], pred, ex.verify_y)
    if p.source != "base":
        fidelity["source_agreement"] = own["top1_agreement"]
    floor = ex.config.min_agreement_fp32 if p.spec.float_compute else ex.config.min_agreement_int8
    if own["top1_agreement"] < floor:
        hint = ""
        if p.onnx_preset == "u8s8" and "x86-vnni" not in resolve_targets(("auto",), ex.machine):
            hint = (" (U8S8 with full-range weights saturates on this CPU without VNNI: "
                    "export with --target auto or x86-avx2)")
        raise ParityError(f"{p.name} agrees with its Keras model ({p.source}) on only "
                          f"{own['top1_agreement']:.1%} of {len(ex.verify_y)} test images "
                          f"(minimum {floor:.0%}){hint}; not written")
    return runner, fidelity


def _io_record(runner) -> dict:
    s = runner.input_spec
    rec = {"shape": [None, *s.shape], "dtype": s.dtype, "layout": s.layout, "value_range": [0, 255]}
    if s.scale is not None:
        rec["quantization"] = {"scale": s.scale, "zero_point": s.zero_point}
    return rec


def _record(p: Planned, ex: _Export, method: str, seconds: float, runner, *, fidelity: dict,
            diagnosis: dict | None) -> dict:
    """The manifest record of one verified artifact (its path relative to the run root)."""
    path = ex.staging / p.file
    rec = {"name": p.name, "format": p.format, "precision": p.precision, "variant": p.variant,
           "source": p.source, "float_parent": p.float_parent, "made_from": ex.manifest["model"]["file"],
           "method": method, "export_seconds": round(seconds, 2), "input": _io_record(runner),
           "output": {"shape": [None, runner.num_classes], "kind": "probabilities"},
           "gzip_bytes": gzip_bytes(path), **weight_stats(path), "fidelity": fidelity,
           "verified_on": ex.machine.record()}
    if p.targets:
        rec["targets"] = list(p.targets)
    if p.onnx_preset:
        rec["onnx_preset"] = p.onnx_preset
    if diagnosis is not None:
        rec["diagnosis"] = diagnosis
    if p.variant == "int8":
        rec.update({"float_layers": [], **ex.selective.get(p.name, {})})
    # recorded relative to the run root, where the staging folder will land
    return file_record(path, f"{ex.run.artifacts.name}/{p.file}", **rec)


def _make(p: Planned, ex: _Export, log) -> tuple[dict, bool]:
    """Convert, verify and describe one artifact; returns its record and whether it is over the budget."""
    from .diagnose import diagnose

    method, seconds = _convert(p, ex, log)
    runner, fidelity = _verify(p, ex)
    micro = None
    if p.variant == MICRO_VARIANT:  # the Cortex-M file: TFLite Micro's own checks, and its C sources
        micro = check_micro(ex.staging / p.file, ex.verify_x, ex.verify_y, ex.labels, out_dir=ex.staging / p.name,
                            log=log)
        micro["c_sources"] = [f"{ex.run.artifacts.name}/{p.name}/{n}" for n in micro["c_sources"]]
    budget = ex.config.max_accuracy_drop
    lost = budget is not None and fidelity["accuracy_drop_pts"] > budget
    if lost and "fallback" in ex.selective.get(p.name, {}):
        # the search held the budget on the validation split (or kept the closest): report, do not fail
        log(f"  {p.name}: {fidelity['accuracy_drop_pts']:.2f} pt lost on the test split, over the "
            f"{budget} pt budget (the fallback search measures on held-out training images)")
        lost = False
    diagnosis = None
    if p.precision == "int8" and (ex.config.diagnose or lost):
        diagnosis = diagnose(ex.staging / p.file, ex.staging / file_name(p.source, p.format, "fp32"),
                             ex.calib.images[:64])
    log(f"  {p.name}: top-1 {fidelity['top1']:.2%} ({-fidelity['accuracy_drop_pts']:+.2f} pt), "
        f"agreement {fidelity['top1_agreement']:.1%}")
    record = _record(p, ex, method, seconds, runner, fidelity=fidelity, diagnosis=diagnosis)
    if micro is not None:
        record["micro"] = micro
    return record, lost


def _over_budget_error(records: list[dict], over: list[str], ex: _Export) -> ParityError:
    by = {r["name"]: r for r in records}
    err = ParityError("; ".join(
        f"{n} loses {by[n]['fidelity']['accuracy_drop_pts']:.2f} pt of top-1 "
        f"({by[n]['fidelity']['top1']:.2%} vs float {by[n]['fidelity']['reference_top1']:.2%})"
        for n in over) + f" on {len(ex.verify_y)} test images, over max_accuracy_drop "
        f"{ex.config.max_accuracy_drop} pt; nothing written", field="ExportConfig.max_accuracy_drop")
    err.diagnosis = {n: by[n]["diagnosis"] for n in over if "diagnosis" in by[n]}
    return err


@locks_run("export")
def export(run_dir: str | Path, config: ExportConfig = ExportConfig(), *, log=lambda msg: None) -> list[dict]:
    """Make the run's artifacts (pruning / QAT first when asked), verify and record them.

    Side effects: holds the run's lock (:func:`edgesmith.core.runlock.run_lock`; waits for
    another writer). Adds to ``RUN/artifacts/``: the files it makes replace those of the same
    name, the other files stay (the folder is rebuilt in a temporary folder with them, renamed
    only after every artifact passed verification); records the export stage in the manifest
    (its artifacts replace the entries of the same name, the others are kept) and marks the
    bench results stale (``RUN/bench/`` is kept; its results may describe replaced files).

    Example::

        records = export("runs/resnet8", ExportConfig(variants=("fp32", "int8"), prune=0.5))

    Args:
        run_dir: a run directory made by ``edgesmith train`` or by an import.
        config: what to make (:class:`ExportConfig`).
        log: called with one-line progress messages.

    Returns:
        The manifest records of the artifacts written (file, sha256, bytes, gzip_bytes,
        format, precision, variant, source, float_parent, input/output specs, weight
        dtypes and sparsity read back from the file, fidelity vs the float Keras model on
        the first ``verify_size`` test images, ``verified_on`` (CPU model, arch, ISA flags),
        and for quantized files the ``targets`` they were made for (int8 ONNX: ``onnx_preset``);
        PTQ int8 files record ``float_layers`` (Keras names kept in float, :mod:`.fallback`) and,
        with ``fallback="auto"``, ``float_nodes`` and the search log ``fallback``.

    Raises:
        RunDirError: not a run, or it has no trained model.
        RunLockedError: another command kept the run for longer than the lock's wait.
        DataError: the training split holds fewer images than ``calibration_size``.
        ParityError: an artifact disagrees with its Keras source beyond the thresholds, or
            loses more top-1 than ``max_accuracy_drop`` (``.diagnosis`` then holds the
            per-layer int8 diagnosis of the offenders, worst layers first); with
            ``fallback="auto"`` a searched int8 file over the budget is reported, not failed.
        ConfigError: a ``float_layers`` name the model does not have, or whose layer left no op.
    """
    run = RunDir(run_dir)
    machine = Machine.here()
    plan = config.plan(machine)
    if any(p.variant == MICRO_VARIANT for p in plan):
        require_tflm()  # the [mcu] extra, before any model is loaded
    ex = _prepare(run, config, log)
    records, over = [], []
    with atomic_path(run.artifacts) as staging, tempfile.TemporaryDirectory() as scratch:
        staging.mkdir()
        ex.staging, ex.scratch = staging, Path(scratch)
        for p in plan:
            record, lost = _make(p, ex, log)
            records.append(record)
            if lost:
                over.append(p.name)
        if over:
            raise _over_budget_error(records, over, ex)
        carry_over(run.artifacts, staging)  # files this export did not make stay
    record_stage(run, ExportStage(
        config={**ex.config.to_dict(), "artifacts": [p.name for p in plan], "calibration_size": len(ex.calib),
                "verify_size": int(len(ex.verify_y)), "resolved_targets": list(resolve_targets(config.targets, machine)),
                "onnx_forms": {preset: list(t) for preset, t in config.onnx_forms(machine)}},
        sources=ex.sources), artifacts=records)
    return records
