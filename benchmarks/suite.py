"""The benchmark suite: every artifact of a run through the runtime, on the test split.

No TensorFlow on this path: artifacts run through :mod:`edgesmith.runtime` and the test
split comes from the TF-free readers, so a device without the ``[train]`` extra can run it.
"""
from __future__ import annotations

import gzip
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import ConfigError, RunDirError
from edgesmith.core.rundir import RunDir, load_manifest, now_iso, package_versions, verify_file
from edgesmith.runtime import default_threads, load

from .stats import latency_summary


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    Attributes:
        threads: intra-op thread counts to measure each artifact with.
        warmup: untimed batch-1 runs before timing.
        runs: timed batch-1 runs (one image each, cycling through the test split).
        limit_test: evaluate accuracy on at most this many test images (None: all).
        target: runtime target, ``cpu``, ``gpu`` or ``auto``.
    """

    threads: tuple[int, ...] = (1,)
    warmup: int = 50
    runs: int = 500
    limit_test: int | None = None
    target: str = "cpu"

    def __post_init__(self):
        if not self.threads or min(self.threads) < 1:
            raise ConfigError(f"--threads must be positive integers, got {list(self.threads)}")
        if self.runs < 10:
            raise ConfigError(f"--runs must be >= 10 for percentiles to mean anything, got {self.runs}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}")
        if self.limit_test is not None and self.limit_test < 1:
            raise ConfigError(f"--limit-test must be positive, got {self.limit_test}")


def environment() -> dict:
    """Fingerprint of where the figures were measured: CPU, cores, OS, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": default_threads(), "os": platform.platform(),
            "versions": package_versions()}


def time_batch1(runner, images: np.ndarray, *, warmup: int, runs: int) -> np.ndarray:
    """Latency of ``runner.predict`` on one image at a time, in ms.

    ``images`` are decoded ``(M, H, W, C) uint8`` already; only the predict call is timed
    (it includes the runner's uint8 -> input-tensor conversion, as a user's call would).
    """
    for i in range(warmup):
        runner.predict(images[i % len(images)][None])
    out = np.empty(runs)
    for i in range(runs):
        x = images[i % len(images)][None]
        t0 = time.perf_counter_ns()
        runner.predict(x)
        out[i] = (time.perf_counter_ns() - t0) / 1e6
    return out


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` after gzip -9 (what pruning actually shrinks)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


def bench_run(run_dir: str | Path, config: BenchConfig = BenchConfig()) -> dict:
    """Measure every artifact in the run's manifest.

    For each artifact x thread count: top-1 on the test split (batched), batch-1 latency
    (mean, std, p50/p90/p99 in ms over ``config.runs`` runs after ``config.warmup``),
    load time in ms, file size and gzip size in bytes.

    Returns:
        ``{"schema_version", "run", "created", "environment", "config", "reference",
        "results": [...]}``; see :mod:`.report` for the files written from it.

    Raises:
        RunDirError: no manifest, no artifacts, or an artifact changed since export.
    """
    run = RunDir(run_dir)
    manifest = load_manifest(run)
    if not manifest.get("artifacts"):
        raise RunDirError(f"{run.root} has no exported artifacts (run `edgesmith export {run.root}` first)")
    spec = DataSpec.from_dict(manifest["dataset"])
    if config.limit_test is not None:
        spec = DataSpec(spec.source, spec.limit_train, config.limit_test, spec.seed)
    test = load_split(spec, "test")
    results = []
    for art in manifest["artifacts"]:
        path = verify_file(run, art)
        for threads in config.threads:
            t0 = time.perf_counter()
            runner = load(path, target=config.target, threads=threads)
            load_ms = (time.perf_counter() - t0) * 1e3
            probs = runner.predict(test.images)
            top1 = float((probs.argmax(1) == test.labels).mean())
            lat = latency_summary(time_batch1(runner, test.images, warmup=config.warmup, runs=config.runs))
            results.append({"artifact": art["name"], "file": art["file"], "format": art["format"],
                            "precision": art["precision"], "float_parent": art.get("float_parent"),
                            "backend": runner.backend, "target": f"{runner.backend}-{runner.target}",
                            "threads": threads, "batch": 1, "top1": top1, "n_test": len(test),
                            "latency_ms": lat, "load_ms": round(load_ms, 2),
                            "bytes": art["bytes"], "gzip_bytes": gzip_size(path)})
    keras_metrics = (manifest["stages"].get("train") or {}).get("metrics", {})
    return {"schema_version": 1, "run": manifest["run"], "created": now_iso(),
            "environment": environment(),
            "config": {"threads": list(config.threads), "warmup": config.warmup, "runs": config.runs,
                       "target": config.target, "n_test": len(test), "batch": 1},
            "reference": {"name": "keras_fp32", "top1": keras_metrics.get("top1"),
                          "n_test": keras_metrics.get("n_test")},
            "results": results}
