"""The export stage: every artifact of a trained run, converted, verified and recorded."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import ConfigError, ParityError
from edgesmith.core.fsutil import atomic_path
from edgesmith.core.rundir import RunDir, file_record, now_iso, require_model, save_manifest

from .fidelity import compare
from .metadata import embed_metadata
from .onnx import quantize_onnx, to_onnx
from .tflite import to_tflite

# name -> (format, precision, file name, float parent)
ARTIFACTS = {
    "tflite_fp32": ("tflite", "fp32", "model_fp32.tflite", None),
    "tflite_int8": ("tflite", "int8", "model_int8.tflite", "tflite_fp32"),
    "onnx_fp32": ("onnx", "fp32", "model_fp32.onnx", None),
    "onnx_int8": ("onnx", "int8", "model_int8.onnx", "onnx_fp32"),
}


@dataclass(frozen=True)
class ExportConfig:
    """How to export a run.

    Attributes:
        artifacts: which of :data:`ARTIFACTS` to write (int8 ones need their float parent
            for the ONNX route).
        calibration_size: training images in the representative dataset / calibration reader.
        verify_size: held-out test images on which each artifact is compared with Keras.
        min_agreement_fp32 / min_agreement_int8: the top-1 agreement with the Keras model
            below which export fails (a silent conversion bug, not quantization noise).
    """

    artifacts: tuple[str, ...] = tuple(ARTIFACTS)
    calibration_size: int = 256
    verify_size: int = 500
    min_agreement_fp32: float = 0.99
    min_agreement_int8: float = 0.85

    def __post_init__(self):
        unknown = [a for a in self.artifacts if a not in ARTIFACTS]
        if unknown or not self.artifacts:
            raise ConfigError(f"unknown artifact(s) {unknown or '(none)'}; choose from {', '.join(ARTIFACTS)}")
        if "onnx_int8" in self.artifacts and "onnx_fp32" not in self.artifacts:
            raise ConfigError("onnx_int8 is quantized from onnx_fp32: export both")
        if self.calibration_size < 1 or self.verify_size < 1:
            raise ConfigError("calibration and verification sizes must be >= 1")


def _io_record(runner) -> dict:
    s = runner.input_spec
    rec = {"shape": [None, *s.shape], "dtype": s.dtype, "layout": s.layout, "value_range": [0, 255]}
    if s.scale is not None:
        rec["quantization"] = {"scale": s.scale, "zero_point": s.zero_point}
    return rec


def export(run_dir: str | Path, config: ExportConfig = ExportConfig()) -> list[dict]:
    """Convert the run's Keras model into the configured artifacts and record them.

    Side effects: replaces ``RUN/artifacts/`` as a whole (built in a temporary folder,
    renamed only after every artifact passed verification) and updates the manifest.

    Returns:
        The manifest records of the artifacts written (file, sha256, bytes, format,
        precision, input/output specs, fidelity vs Keras).

    Raises:
        RunDirError: not a run, or it has no trained model.
        ParityError: an artifact disagrees with the Keras model beyond the thresholds.
    """
    from edgesmith.runtime import load
    from edgesmith.train._keras import keras

    run = RunDir(run_dir)
    manifest, model_path = require_model(run)
    model = keras.models.load_model(model_path, compile=False)
    ds = manifest["dataset"]
    spec = DataSpec.from_dict(ds)
    calib = load_split(DataSpec(spec.source, limit_train=config.calibration_size, seed=spec.seed + 7), "train")
    test = load_split(spec, "test")
    verify_x, verify_y = test.images[:config.verify_size], test.labels[:config.verify_size]
    reference = model.predict(verify_x.astype(np.float32), batch_size=256, verbose=0)
    labels = ds["class_names"]

    records = []
    with atomic_path(run.artifacts) as staging:
        staging.mkdir()
        for name in config.artifacts:
            fmt, precision, filename, parent = ARTIFACTS[name]
            path = staging / filename
            started = time.perf_counter()
            if fmt == "tflite":
                to_tflite(model, path, precision=precision, representative=calib.images)
                method = ("float32 conversion" if precision == "fp32" else
                          f"PTQ full-integer int8, per-channel weights, uint8 I/O, "
                          f"representative dataset of {len(calib)} training images")
            elif precision == "fp32":
                to_onnx(model, path, labels=labels)
                method = "tf2onnx float32 conversion"
            else:
                quantize_onnx(staging / ARTIFACTS[parent][2], path, calibration=calib.images, labels=labels)
                method = (f"ONNX Runtime static quantization, QDQ, S8S8, per-channel, MinMax "
                          f"calibration on {len(calib)} training images")
            seconds = time.perf_counter() - started
            embed_metadata(path, labels=labels)  # labels + input spec in the file itself
            runner = load(path, target="cpu")
            fidelity = compare(reference, runner.predict(verify_x), verify_y)
            floor = config.min_agreement_fp32 if precision == "fp32" else config.min_agreement_int8
            if fidelity["top1_agreement"] < floor:
                raise ParityError(f"{name} agrees with the Keras model on only "
                                  f"{fidelity['top1_agreement']:.1%} of {len(verify_y)} test images "
                                  f"(minimum {floor:.0%}); not written")
            records.append({"name": name, "format": fmt, "precision": precision,
                            "float_parent": parent, "made_from": manifest["model"]["file"],
                            "method": method, "export_seconds": round(seconds, 2),
                            "input": _io_record(runner),
                            "output": {"shape": [None, runner.num_classes], "kind": "probabilities"},
                            "fidelity": fidelity})
            # recorded relative to the run root, where the staging folder will land
            records[-1] = file_record(path, f"{run.artifacts.name}/{filename}", **records[-1])
    manifest["artifacts"] = records
    manifest["stages"]["export"] = {"finished": now_iso(), "config": {
        "artifacts": list(config.artifacts), "calibration_size": len(calib),
        "verify_size": int(len(verify_y))}}
    manifest["stages"].pop("bench", None)  # earlier results described other files
    if run.bench.exists():
        shutil.rmtree(run.bench)
    save_manifest(run, manifest)
    return records
