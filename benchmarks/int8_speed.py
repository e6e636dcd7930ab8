"""Is int8 actually faster? Before/after table for the int8 forms edgesmith exports.

Reproduces, on one trained run, the table that motivated issue 7: LiteRT float32 and
int8, ONNX Runtime float32 (tf2onnx) and int8 in the standard tools' default form
(static QDQ, S8S8, per-channel), then edgesmith's export defaults (Rescaling folded into
the first convolution; ONNX: U8S8 QDQ with a uint8 graph input). For each: top-1 on
the test split, batch-1 p50 at one thread, batch-64 throughput at 1 and 2 threads, and
the fraction of the CPU's peak MAC rate achieved.

Usage (needs the [train] extra for the conversions)::

    python -m edgesmith.benchmarks.int8_speed RUN [--runs 1000] [--limit-test 10000]

Latencies are interleaved across artifacts (round-robin) so background load affects
all of them alike; only ``Runner.predict`` is timed, on decoded uint8 images.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edgesmith.core.cpuinfo import cpu_info
from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.rundir import RunDir, require_model
from edgesmith.runtime import load

# Peak multiply-accumulates per cycle per core (AVX-512): fp32 = 2 FMA ports x 16 lanes;
# int8 = 2 ports x 64 (VNNI vpdpbusd: 4 int8 products per 32-bit lane). Source: Intel
# optimization manual, AVX-512 VNNI throughput; issue 7 uses the int8 figure.
PEAK_MAC_PER_CYCLE = {"fp32": 32, "int8": 128}


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass (Conv2D, DepthwiseConv2D, Dense)."""
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


def cpu_ghz() -> float:
    """Clock of the first core from /proc/cpuinfo ('cpu MHz'), in GHz (NaN where unknown)."""
    mhz = cpu_info().mhz
    return mhz / 1000 if mhz else float("nan")


def build_artifacts(run: RunDir, out: Path, calib: np.ndarray) -> tuple[dict[str, tuple[Path, str]], int]:
    """Write the before/after artifacts into ``out``; returns (name -> (path, precision), MACs)."""
    from edgesmith.export.fold import fold_rescaling
    from edgesmith.export.onnx import quantize_onnx, to_onnx
    from edgesmith.export.tflite import to_tflite
    from edgesmith.train._keras import keras

    model = keras.models.load_model(run.model, compile=False)
    folded = fold_rescaling(model)
    arts = {}
    to_tflite(model, out / "litert_fp32.tflite")
    arts["LiteRT float32"] = (out / "litert_fp32.tflite", "fp32")
    to_tflite(model, out / "litert_int8_default.tflite", precision="int8", representative=calib)
    arts["LiteRT int8 (TFLiteConverter full-integer)"] = (out / "litert_int8_default.tflite", "int8")
    to_tflite(folded, out / "litert_int8_edgesmith.tflite", precision="int8", representative=calib)
    arts["LiteRT int8 (edgesmith export)"] = (out / "litert_int8_edgesmith.tflite", "int8")
    to_onnx(model, out / "ort_fp32.onnx")
    arts["ORT float32 (tf2onnx)"] = (out / "ort_fp32.onnx", "fp32")
    quantize_onnx(out / "ort_fp32.onnx", out / "ort_int8_s8s8.onnx", calibration=calib, preset="s8s8")
    arts["ORT int8 (static QDQ, S8S8, per-channel)"] = (out / "ort_int8_s8s8.onnx", "int8")
    to_onnx(folded, out / "ort_fp32_folded.onnx")
    quantize_onnx(out / "ort_fp32_folded.onnx", out / "ort_int8_x86.onnx", calibration=calib, preset="x86")
    arts["ORT int8 (edgesmith export: U8S8 QDQ, uint8 input)"] = (out / "ort_int8_x86.onnx", "int8")
    return arts, count_macs(model)


def measure(arts: dict, test, *, runs: int, batch: int = 64) -> dict[str, dict]:
    """Top-1, interleaved batch-1 p50 (1 thread) and batch-``batch`` img/s (1 and 2 threads)."""
    res = {}
    one = {k: load(p, target="cpu", threads=1) for k, (p, _) in arts.items()}
    for k, r in one.items():
        res[k] = {"top1": float((r.predict(test.images).argmax(1) == test.labels).mean())}
    lat = {k: np.empty(runs) for k in one}
    for i in range(runs + 50):
        x = test.images[i % len(test.images)][None]
        for k, r in one.items():
            t0 = time.perf_counter_ns()
            r.predict(x)
            if i >= 50:  # the first 50 rounds are warm-up
                lat[k][i - 50] = (time.perf_counter_ns() - t0) / 1e3
    for k in one:
        res[k]["p50_us"] = float(np.median(lat[k]))
    xb = test.images[:batch]
    for threads in (1, 2):
        for k, (p, _) in arts.items():
            r = one[k] if threads == 1 else load(p, target="cpu", threads=threads)
            r.predict(xb)
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < 1.5:
                r.predict(xb)
                n += batch
            res[k][f"img_s_{threads}t"] = n / (time.perf_counter() - t0)
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a trained run directory (model.keras + manifest)")
    ap.add_argument("--runs", type=int, default=1000, help="timed batch-1 runs per artifact")
    ap.add_argument("--limit-test", type=int, default=None, help="test images for top-1 (default: all)")
    args = ap.parse_args(argv)
    run = RunDir(args.run)
    manifest, _ = require_model(run)
    spec = DataSpec.from_dict(manifest["dataset"])
    calib = load_split(DataSpec(spec.source, limit_train=256, seed=spec.seed + 7), "train").images
    test = load_split(DataSpec(spec.source, spec.limit_train, args.limit_test or spec.limit_test, spec.seed), "test")
    with tempfile.TemporaryDirectory() as tmp:
        arts, macs = build_artifacts(run, Path(tmp), calib)
        res = measure(arts, test, runs=args.runs)
    ghz = cpu_ghz()
    print(f"\n{manifest['model']['architecture']} ({macs / 1e6:.1f} M MACs), {len(test)} test images, "
          f"{os.cpu_count()} cores at {ghz:.2f} GHz; batch-1 p50 over {args.runs} interleaved runs, 1 thread\n")
    print(f"| artifact | top-1 | p50 µs | peak % | img/s b64 1t | img/s b64 2t |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, (path, prec) in arts.items():
        r = res[k]
        peak = macs / (r["p50_us"] * 1e-6) / (PEAK_MAC_PER_CYCLE[prec] * ghz * 1e9)
        print(f"| {k} | {r['top1']:.2%} | {r['p50_us']:.0f} | {peak:.1%} | {r['img_s_1t']:.0f} | {r['img_s_2t']:.0f} |")
    def ratio(a, b, key, inverse=False):
        return res[b][key] / res[a][key] if inverse else res[a][key] / res[b][key]
    lf, li = "LiteRT float32", "LiteRT int8 (edgesmith export)"
    of, oi = "ORT float32 (tf2onnx)", "ORT int8 (edgesmith export: U8S8 QDQ, uint8 input)"
    print(f"\nLiteRT int8 vs float: {ratio(lf, li, 'p50_us'):.2f}x batch-1, "
          f"{ratio(li, lf, 'img_s_1t'):.2f}x / {ratio(li, lf, 'img_s_2t'):.2f}x batch-64 (1 / 2 threads)")
    print(f"ORT int8 vs float:    {ratio(of, oi, 'p50_us'):.2f}x batch-1, "
          f"{ratio(oi, of, 'img_s_1t'):.2f}x / {ratio(oi, of, 'img_s_2t'):.2f}x batch-64 (1 / 2 threads)")


if __name__ == "__main__":
    main()
