"""The export stage: every artifact of a trained run, converted, verified and recorded.

An artifact is one (source model, format, variant):

* source: ``base`` (the run's ``model.keras``), ``pruned`` (magnitude-pruned and
  fine-tuned, :mod:`.prune`), ``clustered`` (weight clustering of the pruned model,
  sparsity-preserving, or of the base one, :mod:`.cluster`), ``qat`` (quantization-aware
  fine-tune, :mod:`.qat`), ``pruned_qat`` (prune-preserving QAT of the pruned model) and
  ``clustered_qat`` (cluster-preserving QAT of the clustered model);
* format: ``tflite`` or ``onnx``;
* variant: ``fp32``; ``fp16`` (TFLite); ``dynamic`` (dynamic-range int8 weights);
  ``int8`` (full-integer PTQ: TFLite per-channel with uint8/int8 I/O, ONNX static QDQ
  with a calibration method); ``int8-tflite`` (ONNX: the int8 TFLite file through tf2onnx).

Every file is run through :func:`edgesmith.runtime.load` on held-out test images and
compared with the float Keras model; every non-float-parent artifact records as its
``float_parent`` the base fp32 artifact of its format, so accuracy deltas are always
against the original float model.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import ConfigError, DataError, ParityError
from edgesmith.core.fsutil import atomic_path
from edgesmith.core.rundir import RunDir, file_record, now_iso, require_model, save_manifest, stage

from .fidelity import accuracy_drop_pts, compare, gzip_bytes, weight_stats
from .metadata import embed_metadata
from .fold import fold_rescaling
from .onnx import CALIBRATION_METHODS, PRESETS, quantize_onnx, to_onnx
from .onnx_variants import quantize_onnx_dynamic, tflite_to_onnx
from .cluster import check_clusters
from .prune import FineTune, check_sparsity
from .tflite import to_tflite

FORMATS = ("tflite", "onnx")
# variant -> formats that offer it
VARIANTS = {"fp32": ("tflite", "onnx"), "fp16": ("tflite",), "dynamic": ("tflite", "onnx"),
            "int8": ("tflite", "onnx"), "int8-tflite": ("onnx",)}
_PRECISION = {"fp32": "fp32", "fp16": "fp16", "dynamic": "dynamic", "int8": "int8", "int8-tflite": "int8"}
_SUFFIX = {"fp32": "fp32", "fp16": "fp16", "dynamic": "dynamic", "int8": "int8", "int8-tflite": "int8_from_tflite"}
SOURCES = ("base", "pruned", "clustered", "qat", "pruned_qat", "clustered_qat")
DEFAULT_VARIANTS = ("fp32", "int8")


def artifact_name(source: str, fmt: str, variant: str) -> str:
    """``tflite_int8``, ``pruned_onnx_dynamic``, ``qat_tflite_int8``, ..."""
    return ("" if source == "base" else f"{source}_") + f"{fmt}_{_SUFFIX[variant]}"


def _file_name(source: str, fmt: str, variant: str) -> str:
    return "model_" + ("" if source == "base" else f"{source}_") + f"{_SUFFIX[variant]}.{fmt}"


# name -> (format, precision, file name, float parent) of the base model's artifacts
ARTIFACTS = {artifact_name("base", f, v): (f, _PRECISION[v], _file_name("base", f, v),
                                           None if v == "fp32" else f"{f}_fp32")
             for f in FORMATS for v in VARIANTS if f in VARIANTS[v]}


@dataclass(frozen=True)
class Planned:
    """One artifact to write."""

    name: str
    source: str
    format: str
    variant: str
    file: str
    float_parent: str | None

    @property
    def precision(self) -> str:
        return _PRECISION[self.variant]


@dataclass(frozen=True)
class ExportConfig:
    """How to export a run.

    Attributes:
        formats: ``tflite`` and/or ``onnx``.
        variants: of :data:`VARIANTS`; each is made in every chosen format that offers it,
            and ``fp32`` (the float parent) is always added for each format.
        artifacts: explicit base artifact names (of :data:`ARTIFACTS`), overriding
            formats x variants (int8 ONNX ones need their float parent).
        calibration_size: training images in the representative dataset / calibration reader.
        calibration: ONNX static quantization calibration method (minmax, entropy, percentile).
        onnx_preset: int8 ONNX layout per hardware (:data:`edgesmith.export.onnx.PRESETS`):
            ``x86`` (U8S8 with a uint8 input, ONNX Runtime's fast CPU form), ``s8s8`` or
            ``tensorrt`` (symmetric S8S8 QDQ).
        io_dtype: input/output type of full-integer TFLite files: ``uint8`` or ``int8``.
        verify_size: held-out test images on which each artifact is compared with Keras.
        min_agreement_fp32 / min_agreement_int8: top-1 agreement with the artifact's own
            Keras source model below which export fails (a silent conversion bug).
        max_accuracy_drop: fail if any artifact's test top-1 is more than this many
            percentage points below the float Keras model's (``None``: no budget).
        prune: target sparsity in (0, 1) for the ``pruned`` source (``None``: no pruning).
        structured_2_4: prune with the 2:4 pattern instead (sparsity 0.5).
        cluster: clusters per kernel (2..256) for the ``clustered`` source (``None``: no
            clustering); clusters the pruned model, keeping its zeros, when pruning.
        qat: add quantization-aware-trained int8 artifacts (``qat``; ``pruned_qat`` too
            when pruning, with the prune-preserving scheme; ``clustered_qat`` when
            clustering, with the cluster-preserving scheme).
        prune_tune / cluster_tune / qat_tune: the fine-tunes.
        diagnose: record a per-layer int8 diagnosis for every int8 artifact (always done
            for an artifact over the accuracy budget).
    """

    formats: tuple[str, ...] = FORMATS
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    artifacts: tuple[str, ...] | None = None
    calibration_size: int = 256
    calibration: str = "minmax"
    onnx_preset: str = "x86"
    io_dtype: str = "uint8"
    verify_size: int = 500
    min_agreement_fp32: float = 0.99
    min_agreement_int8: float = 0.85
    max_accuracy_drop: float | None = None
    prune: float | None = None
    structured_2_4: bool = False
    cluster: int | None = None
    qat: bool = False
    prune_tune: FineTune = FineTune(epochs=4, learning_rate=5e-4)
    cluster_tune: FineTune = FineTune(epochs=4, learning_rate=1e-4)
    qat_tune: FineTune = FineTune(epochs=1, learning_rate=1e-4)
    diagnose: bool = False

    def __post_init__(self):
        if self.artifacts is not None:
            unknown = [a for a in self.artifacts if a not in ARTIFACTS]
            if unknown or not self.artifacts:
                raise ConfigError(f"unknown artifact(s) {unknown or '(none)'}; choose from {', '.join(ARTIFACTS)}")
            for a in self.artifacts:
                parent = ARTIFACTS[a][3]
                if a.startswith("onnx_") and parent and parent not in self.artifacts:
                    raise ConfigError(f"{a} is quantized from {parent}: export both")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"unknown format(s) {bad or '(none)'}; choose from {', '.join(FORMATS)}")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad or not self.variants:
            raise ConfigError(f"unknown variant(s) {bad or '(none)'}; choose from {', '.join(VARIANTS)}")
        for v in self.variants:
            if not set(VARIANTS[v]) & set(self.formats):
                raise ConfigError(f"variant {v} exists only for {', '.join(VARIANTS[v])}, "
                                  f"not in --formats {','.join(self.formats)}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"unknown calibration method {self.calibration!r}; choose {', '.join(CALIBRATION_METHODS)}")
        if self.onnx_preset not in PRESETS:
            raise ConfigError(f"unknown ONNX int8 preset {self.onnx_preset!r}; choose {', '.join(PRESETS)}")
        if self.io_dtype not in ("uint8", "int8"):
            raise ConfigError(f"--io-dtype must be uint8 or int8, got {self.io_dtype!r}")
        if self.calibration_size < 1 or self.verify_size < 1:
            raise ConfigError("calibration and verification sizes must be >= 1")
        if self.prune is not None:
            check_sparsity(self.prune)
        if self.cluster is not None:
            check_clusters(self.cluster)
        if self.structured_2_4 and self.prune not in (None, 0.5):
            raise ConfigError(f"2:4 structured sparsity is 0.5; it cannot reach --prune {self.prune}")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise ConfigError(f"--max-accuracy-drop must be >= 0 points, got {self.max_accuracy_drop}")

    @property
    def pruning(self) -> bool:
        return self.prune is not None or self.structured_2_4

    def plan(self) -> list[Planned]:
        """The artifacts to write, float parents first, in a stable order."""
        if self.artifacts is not None:
            base = [(ARTIFACTS[a][0], next(v for v in VARIANTS if _file_name("base", ARTIFACTS[a][0], v)
                                           == ARTIFACTS[a][2])) for a in self.artifacts]
        else:
            variants = ["fp32", *[v for v in self.variants if v != "fp32"]]
            base = [(f, v) for f in self.formats for v in variants if f in VARIANTS[v]]
        sources = [("base", base)]
        if self.pruning:
            sources.append(("pruned", base))
        if self.cluster is not None:
            sources.append(("clustered", base))
        qat_pairs = [("tflite", "int8")] + ([("onnx", "int8-tflite")] if "onnx" in self.formats else [])
        if self.qat:
            sources.append(("qat", qat_pairs))
            if self.pruning:
                sources.append(("pruned_qat", qat_pairs))
            if self.cluster is not None:
                sources.append(("clustered_qat", qat_pairs))
        out = []
        for source, pairs in sources:
            for fmt, v in pairs:
                parent = None if (source, v) == ("base", "fp32") else f"{fmt}_fp32"
                if parent and artifact_name("base", fmt, "fp32") not in [p.name for p in out]:
                    parent = None  # explicit artifact list without the float parent (tflite only)
                out.append(Planned(artifact_name(source, fmt, v), source, fmt, v,
                                   _file_name(source, fmt, v), parent))
        return out

    def to_dict(self) -> dict:
        return {"formats": list(self.formats), "variants": list(self.variants),
                "calibration_size": self.calibration_size, "calibration": self.calibration,
                "onnx_preset": self.onnx_preset,
                "io_dtype": self.io_dtype, "verify_size": self.verify_size,
                "max_accuracy_drop": self.max_accuracy_drop, "prune": self.prune,
                "structured_2_4": self.structured_2_4, "cluster": self.cluster, "qat": self.qat,
                "prune_tune": vars(self.prune_tune), "cluster_tune": vars(self.cluster_tune),
                "qat_tune": vars(self.qat_tune)}


def _io_record(runner) -> dict:
    s = runner.input_spec
    rec = {"shape": [None, *s.shape], "dtype": s.dtype, "layout": s.layout, "value_range": [0, 255]}
    if s.scale is not None:
        rec["quantization"] = {"scale": s.scale, "zero_point": s.zero_point}
    return rec


def _predict(model, images: np.ndarray) -> np.ndarray:
    return model.predict(images.astype(np.float32), batch_size=256, verbose=0)


def _build_sources(model, config: ExportConfig, spec: DataSpec, verify_x, log) -> tuple[dict, dict]:
    """Keras models per source, and what each took (sparsity, fine-tune, seconds)."""
    from .cluster import cluster, layer_unique_values
    from .prune import layer_sparsity, prune
    from .qat import quantize_aware

    models, info = {"base": model}, {"base": {"model": "model.keras"}}
    if not (config.pruning or config.qat or config.cluster):
        return models, info
    train = load_split(spec, "train")
    if config.pruning:
        log(f"pruning to {0.5 if config.structured_2_4 else config.prune:.0%} sparsity"
            f"{' (2:4)' if config.structured_2_4 else ''}, fine-tuning {config.prune_tune.epochs} epoch(s) "
            f"on {min(len(train), config.prune_tune.limit or len(train))} training images")
        t = time.perf_counter()
        models["pruned"] = prune(model, train.images, train.labels, sparsity=config.prune or 0.5,
                                 tune=config.prune_tune, structured_2_4=config.structured_2_4, seed=spec.seed)
        per_layer = layer_sparsity(models["pruned"])
        info["pruned"] = {"method": "TF-MOT prune_low_magnitude, " + (
            "2:4 structured (sparsity_m_by_n)" if config.structured_2_4 else
            "PolynomialDecay 0 -> target over 2/3 of the fine-tune") + ", strip_pruning",
            "target_sparsity": 0.5 if config.structured_2_4 else config.prune,
            "layer_sparsity": per_layer, "fine_tune": vars(config.prune_tune),
            "seconds": round(time.perf_counter() - t, 1)}
    if config.cluster is not None:
        parent = "pruned" if config.pruning else "base"
        log(f"clustering the {parent} model to {config.cluster} values per kernel"
            f"{' (sparsity-preserving)' if config.pruning else ''}, fine-tuning {config.cluster_tune.epochs} epoch(s)")
        t = time.perf_counter()
        models["clustered"] = cluster(models[parent], train.images, train.labels, clusters=config.cluster,
                                      preserve_sparsity=config.pruning, tune=config.cluster_tune, seed=spec.seed)
        info["clustered"] = {
            "method": "TF-MOT cluster_weights, KMEANS_PLUS_PLUS, per-tensor"
                      + (", preserve_sparsity" if config.pruning else "") + ", strip_clustering",
            "from": parent, "clusters": config.cluster,
            "layer_unique_values": layer_unique_values(models["clustered"]),
            "layer_sparsity": layer_sparsity(models["clustered"]), "fine_tune": vars(config.cluster_tune),
            "seconds": round(time.perf_counter() - t, 1)}
    if config.qat:
        for src, parent in (("qat", "base"), ("pruned_qat", "pruned"), ("clustered_qat", "clustered")):
            if parent not in models:
                continue
            keep_zeros = parent == "pruned" or (parent == "clustered" and config.pruning)
            log(f"quantization-aware training of the {parent} model"
                f"{' (cluster-preserving)' if parent == 'clustered' else ''}"
                f"{' (prune-preserving)' if keep_zeros else ''}, {config.qat_tune.epochs} epoch(s)")
            t = time.perf_counter()
            models[src] = quantize_aware(models[parent], train.images, train.labels, tune=config.qat_tune,
                                         preserve_sparsity=keep_zeros, preserve_clusters=parent == "clustered",
                                         seed=spec.seed)
            info[src] = {"method": "TF-MOT quantize_apply, " + (
                f"Default8BitClusterPreserveQuantizeScheme(preserve_sparsity={keep_zeros}) "
                f"({'PCQAT' if keep_zeros else 'CQAT'})" if parent == "clustered" else
                "Default8BitPrunePreserveQuantizeScheme (PQAT)" if parent == "pruned" else
                "Default8BitQuantizeScheme") + "; Rescaling gets an output-only quantize config",
                "from": parent, "fine_tune": vars(config.qat_tune), "seconds": round(time.perf_counter() - t, 1)}
    return models, info


def _convert(p: Planned, model, staging: Path, scratch: Path, config: ExportConfig, calib, labels) -> str:
    """Write one artifact at ``staging / p.file``; returns a one-line method description."""
    path = staging / p.file
    n = len(calib)
    if p.format == "tflite":
        to_tflite(model, path, precision=p.variant, representative=calib, io_dtype=config.io_dtype)
        return {"fp32": "float32 conversion",
                "fp16": "PTQ float16 weights (float compute)",
                "dynamic": "PTQ dynamic range: int8 weights, activations quantized at run time",
                "int8": (f"QAT ranges, full-integer int8, {config.io_dtype} I/O" if "qat" in p.source else
                         f"PTQ full-integer int8, per-channel weights, {config.io_dtype} I/O, "
                         f"representative dataset of {n} training images")}[p.variant]
    float_onnx = staging / _file_name(p.source, "onnx", "fp32")
    if p.variant == "fp32":
        to_onnx(model, path, labels=labels)
        return "tf2onnx float32 conversion"
    if p.variant == "dynamic":
        quantize_onnx_dynamic(float_onnx, path, labels=labels)
        return "ONNX Runtime dynamic quantization: per-channel int8 weights, uint8 activations at run time"
    if p.variant == "int8":
        quantize_onnx(float_onnx, path, calibration=calib, labels=labels, method=config.calibration,
                      preset=config.onnx_preset)
        form = {"x86": "U8S8, uint8 input", "s8s8": "S8S8", "tensorrt": "S8S8 symmetric"}[config.onnx_preset]
        return (f"ONNX Runtime static quantization, QDQ {form} ({config.onnx_preset} preset), per-channel, "
                f"{config.calibration} calibration on {n} training images")
    tfl = staging / _file_name(p.source, "tflite", "int8")
    if not tfl.exists():
        tfl = scratch / f"{p.source}_int8.tflite"
        to_tflite(model, tfl, precision="int8", representative=calib, io_dtype="uint8")
    tflite_to_onnx(tfl, path, labels=labels)
    return f"tf2onnx from_tflite of the full-integer int8 TFLite ({'QAT' if 'qat' in p.source else 'PTQ'})"


def export(run_dir: str | Path, config: ExportConfig = ExportConfig(), *, log=lambda msg: None) -> list[dict]:
    """Make the run's artifacts (pruning / QAT first when asked), verify and record them.

    Side effects: replaces ``RUN/artifacts/`` as a whole (built in a temporary folder,
    renamed only after every artifact passed verification) and updates the manifest.

    Args:
        log: called with one-line progress messages.

    Returns:
        The manifest records of the artifacts written (file, sha256, bytes, gzip_bytes,
        format, precision, variant, source, float_parent, input/output specs, weight
        dtypes and sparsity read back from the file, fidelity vs the float Keras model).

    Raises:
        RunDirError: not a run, or it has no trained model.
        DataError: the training split holds fewer images than ``calibration_size``.
        ParityError: an artifact disagrees with its Keras source beyond the thresholds, or
            loses more top-1 than ``max_accuracy_drop`` (``.diagnosis`` then holds the
            per-layer int8 diagnosis of the offenders, worst layers first).
    """
    from edgesmith.runtime import load
    from edgesmith.train._keras import keras

    from .diagnose import diagnose

    run = RunDir(run_dir)
    manifest, model_path = require_model(run)
    model = keras.models.load_model(model_path, compile=False)
    ds = manifest["dataset"]
    spec = DataSpec.from_dict(ds)
    calib = load_split(DataSpec(spec.source, limit_train=config.calibration_size, seed=spec.seed + 7), "train")
    if len(calib) < config.calibration_size:
        raise DataError(f"--calibration-size {config.calibration_size} asks for more images than the "
                        f"training split holds ({len(calib)})")
    test = load_split(spec, "test")
    verify_x, verify_y = test.images[:config.verify_size], test.labels[:config.verify_size]
    reference = _predict(model, verify_x)
    labels = ds["class_names"]
    plan = config.plan()
    # fine-tunes left at label_smoothing=None train with the run's own loss
    smoothing = float((stage(manifest, "train").get("config") or {}).get("label_smoothing") or 0)
    tunes = {k: getattr(config, k) for k in ("prune_tune", "cluster_tune", "qat_tune")}
    config = replace(config, **{k: replace(t, label_smoothing=smoothing) for k, t in tunes.items()
                                if t.label_smoothing is None})
    models, sources = _build_sources(model, config, spec, verify_x, log)
    # Same function, one op fewer: the input Rescaling moves into the first conv's kernel
    # (export/fold.py; a no-op for models where that is not exact, e.g. QAT-wrapped ones).
    models = {s: fold_rescaling(m) for s, m in models.items()}
    source_refs = {s: reference if s == "base" else _predict(m, verify_x) for s, m in models.items()}
    for s, info in sources.items():
        info["keras_top1"] = float((source_refs[s].argmax(1) == verify_y).mean())

    records, over_budget, diagnoses = [], [], {}
    with atomic_path(run.artifacts) as staging, tempfile.TemporaryDirectory() as scratch:
        staging.mkdir()
        for p in plan:
            path = staging / p.file
            started = time.perf_counter()
            method = _convert(p, models[p.source], staging, Path(scratch), config, calib.images, labels)
            seconds = time.perf_counter() - started
            embed_metadata(path, labels=labels)  # labels + input spec in the file itself
            runner = load(path, target="cpu")
            pred = runner.predict(verify_x)
            fidelity = compare(reference, pred, verify_y)
            fidelity["accuracy_drop_pts"] = accuracy_drop_pts(fidelity)
            own = fidelity if p.source == "base" else compare(source_refs[p.source], pred, verify_y)
            if p.source != "base":
                fidelity["source_agreement"] = own["top1_agreement"]
            floor = config.min_agreement_fp32 if p.variant in ("fp32", "fp16") else config.min_agreement_int8
            if own["top1_agreement"] < floor:
                raise ParityError(f"{p.name} agrees with its Keras model ({p.source}) on only "
                                  f"{own['top1_agreement']:.1%} of {len(verify_y)} test images "
                                  f"(minimum {floor:.0%}); not written")
            budget = config.max_accuracy_drop
            lost = budget is not None and fidelity["accuracy_drop_pts"] > budget
            if p.precision == "int8" and (config.diagnose or lost):
                diagnoses[p.name] = diagnose(path, staging / _file_name(p.source, p.format, "fp32"),
                                             calib.images[:64])
            if lost:
                over_budget.append(p.name)
            rec = {"name": p.name, "format": p.format, "precision": p.precision, "variant": p.variant,
                   "source": p.source, "float_parent": p.float_parent, "made_from": manifest["model"]["file"],
                   "method": method, "export_seconds": round(seconds, 2),
                   "input": _io_record(runner),
                   "output": {"shape": [None, runner.num_classes], "kind": "probabilities"},
                   "gzip_bytes": gzip_bytes(path), **weight_stats(path), "fidelity": fidelity}
            if p.name in diagnoses:
                rec["diagnosis"] = diagnoses[p.name]
            log(f"  {p.name}: top-1 {fidelity['top1']:.2%} ({-fidelity['accuracy_drop_pts']:+.2f} pt), "
                f"agreement {fidelity['top1_agreement']:.1%}")
            # recorded relative to the run root, where the staging folder will land
            records.append(file_record(path, f"{run.artifacts.name}/{p.file}", **rec))
        if over_budget:
            by = {r["name"]: r for r in records}
            err = ParityError("; ".join(
                f"{n} loses {by[n]['fidelity']['accuracy_drop_pts']:.2f} pt of top-1 "
                f"({by[n]['fidelity']['top1']:.2%} vs float {by[n]['fidelity']['reference_top1']:.2%})"
                for n in over_budget) + f" on {len(verify_y)} test images, over --max-accuracy-drop "
                f"{config.max_accuracy_drop} pt; nothing written")
            err.diagnosis = {n: diagnoses[n] for n in over_budget if n in diagnoses}
            raise err
    manifest["artifacts"] = records
    manifest["stages"]["export"] = {"finished": now_iso(), "config": {
        **config.to_dict(), "artifacts": [p.name for p in plan], "calibration_size": len(calib),
        "verify_size": int(len(verify_y))}, "sources": sources}
    manifest["stages"].pop("bench", None)  # earlier results described other files
    if run.bench.exists():
        shutil.rmtree(run.bench)
    save_manifest(run, manifest)
    return records
