"""Is int8 actually faster? The int8 forms edgesmith exports against the standard tools' defaults.

Builds, from one trained run: LiteRT float32 and int8 as the TFLiteConverter makes it, int8
as ``edgesmith export`` makes it (Rescaling folded into the first convolution); ONNX Runtime
float32 (tf2onnx), int8 in the default static QDQ form (S8S8, per-channel) and int8 as
``edgesmith export`` makes it (U8S8 QDQ, uint8 graph input). All of them are then measured by
the benchmark suite with its ``int8-speed`` preset (one process per artifact, 2,000
interleaved rounds, batch 1 and 64, 1 thread; see :mod:`edgesmith.benchmarks.presets`), and the
table adds the share of the CPU's peak multiply-accumulate rate each batch-1 p50 reaches.

Usage (needs the ``[train]`` extra for the conversions)::

    python tools/int8_forms.py RUN [--limit-test 10000] [--threads 1,2] [--out DIR]

A research script of the project, not part of the installed package. Figures hold for the
machine and the moment they were taken; the script prints them and asserts nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgesmith.benchmarks import bench_config, bench_run, comparisons, write_reports
from edgesmith.core.cpuinfo import cpu_info
from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.rundir import RunDir, file_record, require_model
from edgesmith.core.stages import ExportStage, record_stage

# Peak multiply-accumulates per cycle per core (AVX-512): fp32 = 2 FMA ports x 16 lanes;
# int8 = 2 ports x 64 (VNNI vpdpbusd: 4 int8 products per 32-bit lane). Source: Intel
# optimization manual, AVX-512 VNNI throughput.
PEAK_MAC_PER_CYCLE = {"fp32": 32, "int8": 128}
# name -> (label in the table, format, precision, float parent)
FORMS = {
    "litert_fp32": ("LiteRT float32", "tflite", "fp32", None),
    "litert_int8_default": ("LiteRT int8 (TFLiteConverter full-integer)", "tflite", "int8", "litert_fp32"),
    "litert_int8_edgesmith": ("LiteRT int8 (edgesmith export)", "tflite", "int8", "litert_fp32"),
    "ort_fp32": ("ORT float32 (tf2onnx)", "onnx", "fp32", None),
    "ort_int8_s8s8": ("ORT int8 (static QDQ, S8S8, per-channel)", "onnx", "int8", "ort_fp32"),
    "ort_int8_x86": ("ORT int8 (edgesmith export: U8S8 QDQ, uint8 input)", "onnx", "int8", "ort_fp32"),
}


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass of a tf_keras model (Conv2D, DepthwiseConv2D, Dense)."""
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w, cout = layer.output_shape[1:]
            kh, kw, cin, _ = layer.kernel.shape
            macs += h * w * cout * kh * kw * cin
        elif kind == "DepthwiseConv2D":
            h, w, c = layer.output_shape[1:]
            kh, kw = layer.depthwise_kernel.shape[:2]
            macs += h * w * c * kh * kw
        elif kind == "Dense":
            macs += int(np.prod(layer.kernel.shape))
    return int(macs)


def build_forms(model_path: Path, out: Path, calib: np.ndarray) -> int:
    """Write every form of :data:`FORMS` as ``out/NAME.tflite|onnx``; returns the model's MACs."""
    from edgesmith.export import fold_rescaling, quantize_onnx, to_onnx, to_tflite
    from edgesmith.tfshim import keras

    model = keras.models.load_model(model_path, compile=False)
    folded = fold_rescaling(model)
    to_tflite(model, out / "litert_fp32.tflite")
    to_tflite(model, out / "litert_int8_default.tflite", precision="int8", representative=calib)
    to_tflite(folded, out / "litert_int8_edgesmith.tflite", precision="int8", representative=calib)
    to_onnx(model, out / "ort_fp32.onnx")
    quantize_onnx(out / "ort_fp32.onnx", out / "ort_int8_s8s8.onnx", calibration=calib, preset="s8s8")
    to_onnx(folded, out / "folded_fp32.onnx")
    quantize_onnx(out / "folded_fp32.onnx", out / "ort_int8_x86.onnx", calibration=calib, preset="u8s8")
    (out / "folded_fp32.onnx").unlink()
    return count_macs(model)


def forms_run(src: RunDir, root: Path, calib: np.ndarray) -> tuple[RunDir, int]:
    """A scratch run at ``root`` with the source run's manifest and the forms as its artifacts."""
    run = RunDir(root)
    run.artifacts.mkdir(parents=True)
    shutil.copy(src.manifest, run.manifest)
    macs = build_forms(src.model, run.artifacts, calib)
    records = []
    for name, (_, fmt, precision, parent) in FORMS.items():
        path = run.artifacts / f"{name}.{fmt}"
        records.append(file_record(path, f"artifacts/{path.name}", name=name, format=fmt, precision=precision,
                                   float_parent=parent))
    record_stage(run, ExportStage(config={"made_by": "tools/int8_forms.py"}, sources={}), artifacts=records)
    return run, macs


def print_table(report: dict, macs: int, architecture: str) -> None:
    """The forms' top-1, batch-1 p50 (µs), share of peak MAC rate, and batch-64 img/s per thread count."""
    mhz = cpu_info().mhz
    ghz = mhz / 1000 if mhz else float("nan")
    rows = {(r["artifact"], r["threads"], r["batch"]): r for r in report["results"]}
    threads = report["config"]["threads"]
    cfg = report["config"]
    print(f"\n{architecture} ({macs / 1e6:.1f} M MACs), {cfg['n_test']} test images, {os.cpu_count()} cores at "
          f"{ghz:.2f} GHz; batch-1 p50 at {threads[0]} thread(s), {cfg['rounds']} interleaved rounds\n")
    print("| artifact | top-1 | p50 µs | peak % | " + " | ".join(f"img/s b64 {t}t" for t in threads) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(threads))
    for name, (label, _, precision, _) in FORMS.items():
        one = rows.get((name, threads[0], 1))
        if one is None:
            print(f"| {label} | not measured (see report.md) |")
            continue
        p50_us = one["latency_ms"]["p50"] * 1e3
        peak = macs / (p50_us * 1e-6) / (PEAK_MAC_PER_CYCLE[precision] * ghz * 1e9)
        ips = [rows.get((name, t, 64), {}).get("throughput_ips") for t in threads]
        print(f"| {label} | {one['top1']:.2%} | {p50_us:.0f} | {peak:.1%} | "
              + " | ".join("-" if x is None else f"{x:,.0f}" for x in ips) + " |")
    for c in report.get("comparisons", []):
        print(f"- {FORMS[c['quantized']][0]} vs {FORMS[c['float']][0]}: {c['verdict']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a trained run directory (model.keras + manifest)")
    ap.add_argument("--limit-test", type=int, default=None, help="test images for top-1 (default: all)")
    ap.add_argument("--threads", default=None, help="thread counts, e.g. 1,2 (default: the preset's, 1)")
    ap.add_argument("--out", type=Path, default=None, help="also write the suite's reports into this folder")
    args = ap.parse_args(argv)
    src = RunDir(args.run)
    manifest, _ = require_model(src)
    config = bench_config("int8-speed", limit_test=args.limit_test, threads=args.threads)
    spec = DataSpec.from_dict(manifest["dataset"])
    calib = load_split(dataclasses.replace(spec, limit_train=256, seed=spec.seed + 7), "train").images
    with tempfile.TemporaryDirectory(prefix="edgesmith-int8-forms-") as tmp:
        run, macs = forms_run(src, Path(tmp) / src.root.name, calib)
        report = bench_run(run, config, progress=print)
    report["comparisons"] = comparisons(report["results"])
    if args.out:
        write_reports(report, args.out)
    print_table(report, macs, manifest["model"]["architecture"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
