"""Measure one cell of the benchmark matrix (artifact x target x threads) in a fresh process.

The suite starts ``python -m edgesmith.benchmarks.worker JOB.json OUT.json`` once per cell,
so that every cell gets the same clean process: no thread pool of an earlier session still
spinning on the shared cores, a peak-RSS figure that belongs to this model only, and a
thread setting TensorFlow can still accept (it fixes its pools at start-up). The test split
arrives as ``images.npy`` / ``labels.npy`` already decoded, so nothing but inference is timed.

Memory method (Linux): RSS is read from ``/proc/self/status``. After the imports and the test
split are in memory, the kernel's peak-RSS mark is reset (``/proc/self/clear_refs`` = 5), the
model is loaded and run; ``rss_peak_mib`` is then VmHWM (the process's peak resident set)
and ``rss_model_mib`` = VmHWM - RSS before loading: what the model, its runtime arena and
inference buffers at the largest batch cost. Elsewhere ``resource.getrusage`` is used and
the mark cannot be reset (``rss_method`` says which).
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable, EdgesmithError

ACCURACY_CHUNK = 256  # images per predict call in the (untimed) accuracy pass


def _rss_mib() -> tuple[float | None, float | None]:
    """Current and peak resident set size of this process, MiB (``/proc``; None if unknown)."""
    cur = peak = None
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = ru / 1024 / (1024 if sys.platform == "darwin" else 1)
    return cur, peak


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def time_calls(runner, images: np.ndarray, batch: int, *, warmup: int, runs: int) -> np.ndarray:
    """Latency of ``runner.predict`` on ``batch`` images per call, in ms.

    Args:
        runner: anything with ``predict((N, H, W, C) uint8) -> (N, K) float32``.
        images: ``(M, H, W, C) uint8`` decoded test images, ``M >= batch``; consecutive
            calls take consecutive windows, cycling through them.
        batch: images per call.
        warmup: untimed calls first.
        runs: timed calls.

    Returns:
        ``(runs,) float64`` ms per call. Only the ``predict`` call is inside the timer
        (it includes the runner's uint8 -> input-tensor conversion, as a user's call would);
        the garbage collector is paused while timing.
    """
    starts = np.arange(warmup + runs) * batch % max(len(images) - batch + 1, 1)
    for s in starts[:warmup]:
        runner.predict(images[s:s + batch])
    out = np.empty(runs)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, s in enumerate(starts[warmup:]):
            x = images[s:s + batch]
            t0 = time.perf_counter_ns()
            runner.predict(x)
            out[i] = (time.perf_counter_ns() - t0) / 1e6
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


def accuracy(runner, images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Top-1 and per-class accuracy over the whole split, predicted in chunks of 256 (untimed).

    Returns:
        ``top1`` (fraction), ``correct`` and ``total`` per class (lists of length ``num_classes``).
    """
    preds = np.concatenate([runner.predict(images[i:i + ACCURACY_CHUNK]).argmax(1)
                            for i in range(0, len(images), ACCURACY_CHUNK)])
    hit = preds == labels
    correct = np.bincount(labels[hit], minlength=num_classes)
    total = np.bincount(labels, minlength=num_classes)
    return {"top1": float(hit.mean()), "correct": correct.tolist(), "total": total.tolist()}


def cpu_probe_ms(repeats: int = 31) -> float:
    """Median ms of a fixed single-threaded workload (sorting 100,000 float32): how fast this
    core ran while the cell was measured. Two runs whose probes differ by more than ~10 %
    ran on a machine in a different state (frequency, co-running work), whatever the model did.
    """
    x = np.random.default_rng(0).random(100_000, dtype=np.float32)
    t = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        np.sort(x, kind="quicksort")
        t[i] = (time.perf_counter_ns() - t0) / 1e6
    return float(np.median(t))


def load_runner(path: str, target: str, threads: int):
    """Load ``path`` for a benchmark target, checking the target is what actually runs.

    Raises:
        BackendUnavailable: the target's runtime or device is missing, or ONNX Runtime
            fell back to another execution provider than the one asked for.
    """
    if target.startswith("keras-"):
        from .keras_ref import KerasRunner

        return KerasRunner(path, device=target.split("-")[1], threads=threads)
    from edgesmith.runtime import load

    if target == "litert-cpu" or target == "ort-cpu":
        return load(path, target="cpu", threads=threads)
    from .targets import ORT_PROVIDER

    want = ORT_PROVIDER[target]
    runner = load(path, target="gpu", threads=threads)
    if runner.providers[0] != want and want in runner.providers:
        # runtime.load(target="gpu") prefers TensorRT over CUDA; pin the one measured.
        runner._sess.set_providers([want, "CPUExecutionProvider"])
        runner.providers = tuple(runner._sess.get_providers())
    if runner.providers[0] != want:
        raise BackendUnavailable(f"onnxruntime fell back to {runner.providers[0]} instead of {want} "
                                 "(GPU libraries failed to load)")
    return runner


def measure(job: dict) -> dict:
    """Run one cell. ``job`` holds path, target, threads, batches, warmup, runs, batch_runs,
    accuracy (bool), data (folder with images.npy / labels.npy) and num_classes.

    Returns:
        ``{"ok": True, load_ms, backend, providers, accuracy?, samples_ms {batch: [ms per call]},
        rss_*}`` or ``{"ok": False, "reason": ...}`` when the
        target turned out to be unusable.
    """
    data = Path(job["data"])
    images = np.load(data / "images.npy")
    labels = np.load(data / "labels.npy")
    rss_before, _ = _rss_mib()
    reset = _reset_peak_rss()
    t0 = time.perf_counter()
    try:
        runner = load_runner(job["path"], job["target"], job["threads"])
    except BackendUnavailable as e:
        return {"ok": False, "reason": str(e)}
    load_ms = (time.perf_counter() - t0) * 1e3
    out = {"ok": True, "load_ms": round(load_ms, 2), "backend": runner.backend,
           "providers": list(getattr(runner, "providers", ()) or ())}
    out["samples_ms"] = {}
    for b in job["batches"]:
        b_eff = min(b, len(images))
        warm, runs = (job["warmup"], job["runs"]) if b == 1 else (max(3, -(-job["warmup"] // b)), job["batch_runs"])
        samples = time_calls(runner, images, b_eff, warmup=warm, runs=runs)
        out["samples_ms"][str(b)] = [round(float(x), 5) for x in samples]
    out["cpu_probe_ms"] = round(cpu_probe_ms(), 4)
    _, peak = _rss_mib()
    out["rss_peak_mib"] = round(peak, 1) if peak is not None else None
    out["rss_model_mib"] = round(peak - rss_before, 1) if (reset and peak and rss_before) else None
    out["rss_method"] = "proc-vmhwm-reset" if reset else "getrusage-maxrss"
    if job["accuracy"]:  # after the memory reading: its 256-image chunks would inflate the peak
        out["accuracy"] = accuracy(runner, images, labels, job["num_classes"])
    return out


def main(argv: list[str]) -> int:
    job_file, out_file = argv
    job = json.loads(Path(job_file).read_text())
    try:
        result = measure(job)
    except EdgesmithError as e:
        result = {"ok": False, "reason": str(e)}
    except Exception:  # a bug: hand the traceback to the parent, which raises
        result = {"ok": False, "bug": traceback.format_exc()}
    tmp = Path(out_file + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
