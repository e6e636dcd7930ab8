"""The benchmark suite: artifacts x targets x threads x batch sizes of one run, on its test split.

No TensorFlow in this process: artifacts run through :mod:`edgesmith.runtime` in one child
process per cell (:mod:`.worker`), the test split comes from the TF-free readers, and the
Keras reference, when asked for, is measured in its own child process.

Method (stated in every report):

* the test split is decoded once, before anything is timed;
* top-1 and per-class accuracy: every test image, once per artifact x target (the thread
  count and batch size do not change the arithmetic these runtimes do per image);
* batch-1 latency: ``warmup`` untimed calls, then ``runs`` timed ``runner.predict`` calls on
  one image each (consecutive test images), GC paused; p50/p90/p99, mean and std in ms;
  the timed calls are split over ``passes`` sweeps of all cells and pooled (see BenchConfig);
* throughput: at each larger batch, ``batch_runs`` timed calls after a short warm-up;
  img/s = batch / median call time (robust to a preempted call on a shared machine);
* load time: ``runtime.load`` in a fresh process (file in the page cache), ms;
* peak RSS: see :mod:`.worker` (reset-and-read VmHWM around model load and inference);
* sizes: file bytes and gzip -9 bytes;
* GPU targets are measured at the largest thread count only (threads drive CPU work only).
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import ConfigError, RunDirError
from edgesmith.core.rundir import RunDir, load_manifest, now_iso, verify_file
from edgesmith.runtime import default_threads

from .env import environment
from .stats import latency_summary
from .targets import GPU_TARGETS, GROUPS, TARGET_FORMAT, TARGETS, detect_targets

RESULTS_SCHEMA = 2
WORKER_TIMEOUT_S = 1800


def _default_threads() -> tuple[int, ...]:
    return tuple(sorted({1, default_threads()}))


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    Attributes:
        targets: target names from :data:`.targets.TARGETS` to measure; the others are
            listed as skipped ("not requested").
        threads: intra-op thread counts (default: 1 and every core available).
        batches: batch sizes; 1 gives the latency figures, larger ones the throughput
            (default 1 and 64).
        warmup: untimed batch-1 calls before timing.
        runs: timed batch-1 calls (one image each).
        batch_runs: timed calls at each batch size > 1.
        limit_test: evaluate on at most this many test images (None: the whole split).
        passes: sweeps over all cells; each cell's timed calls are split evenly between this
            many fresh processes, spread over the whole benchmark, and pooled. On a shared
            machine a burst of other work then hits part of every cell's samples instead of
            all of one cell's (2 passes: the stated run-to-run stability).
    """

    targets: tuple[str, ...] = GROUPS["auto"]
    threads: tuple[int, ...] = field(default_factory=_default_threads)
    batches: tuple[int, ...] = (1, 64)
    warmup: int = 50
    runs: int = 500
    batch_runs: int = 30
    limit_test: int | None = None
    passes: int = 2

    def __post_init__(self):
        for t in self.targets:
            if t not in TARGETS:
                raise ConfigError(f"unknown target {t!r}; expected one of {', '.join(TARGETS)}")
        if not self.targets:
            raise ConfigError("no target to measure")
        if not self.threads or min(self.threads) < 1:
            raise ConfigError(f"--threads must be positive integers, got {list(self.threads)}")
        if not self.batches or min(self.batches) < 1:
            raise ConfigError(f"--batch must be positive integers, got {list(self.batches)}")
        if self.runs < 10:
            raise ConfigError(f"--runs must be >= 10 for percentiles to mean anything, got {self.runs}")
        if self.batch_runs < 3:
            raise ConfigError(f"--batch-runs must be >= 3, got {self.batch_runs}")
        if self.passes < 1:
            raise ConfigError(f"--passes must be >= 1, got {self.passes}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}")
        if self.limit_test is not None and self.limit_test < 1:
            raise ConfigError(f"--limit-test must be positive, got {self.limit_test}")
        object.__setattr__(self, "threads", tuple(sorted(set(self.threads))))
        object.__setattr__(self, "batches", tuple(sorted(set(self.batches))))

    def method(self) -> str:
        """One paragraph saying how the figures were taken (goes into every report)."""
        big = [b for b in self.batches if b > 1]
        thr = (f" Throughput at batch {', '.join(map(str, big))}: {self.batch_runs} timed calls in all after a short "
               "warm-up, img/s = batch / median call time." if big else "")
        return (f"Each artifact x target x thread count runs in a fresh process, in {self.passes} "
                f"pass{'es' if self.passes > 1 else ''} over all cells whose samples are pooled. Batch-1 latency: "
                f"{self.warmup} warm-up calls per process, then {self.runs} timed `predict` calls in all on one "
                f"pre-decoded test image each, GC paused, no CPU pinning; only inference (with the runner's "
                f"uint8 -> tensor conversion) is timed.{thr} Top-1 over the whole test split once per "
                f"artifact x target. Peak RSS: kernel VmHWM reset before model load, read after "
                f"inference (model MiB = peak - RSS before load).")


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` after gzip -9 (what pruning actually shrinks)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


def _cells(run: RunDir, manifest: dict, targets: tuple[str, ...]) -> tuple[list[tuple[dict, str]], list[dict]]:
    """(artifact record, target) pairs to measure, and targets with no artifact to run."""
    artifacts = list(manifest["artifacts"])
    if any(TARGET_FORMAT[t] == "keras" for t in targets) and manifest.get("model"):
        artifacts.append({**manifest["model"], "name": "keras_fp32", "format": "keras", "precision": "fp32",
                          "float_parent": None})
    cells, skipped = [], []
    for t in targets:
        fmt = TARGET_FORMAT[t]
        mine = [a for a in artifacts if a["format"] == fmt]
        if not mine:
            skipped.append({"target": t, "reason": f"the run has no {fmt} artifact"})
        cells += [(a, t) for a in mine]
    return cells, skipped


def _max(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def _load_avg() -> float | None:
    """1-minute load average (processes wanting a core), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _run_worker(job: dict, workdir: Path, tag: str) -> dict:
    job_file, out_file = workdir / f"{tag}.job.json", workdir / f"{tag}.out.json"
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "edgesmith.benchmarks.worker", str(job_file), str(out_file)],
                          capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT_S)
    if not out_file.is_file():
        raise RuntimeError(f"benchmark worker for {tag} died (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(out_file.read_text())
    if "bug" in result:
        raise RuntimeError(f"benchmark worker for {tag} failed:\n{result['bug']}")
    return result


def bench_run(run_dir: str | Path, config: BenchConfig = BenchConfig(),
              progress: Callable[[str], None] | None = None) -> dict:
    """Measure every artifact of a run on every requested target that this machine has.

    Args:
        run_dir: a run directory with exported artifacts (``manifest.json``).
        config: what to measure.
        progress: called with one line per finished cell (e.g. to print it).

    Returns:
        The report (schema :data:`RESULTS_SCHEMA`): ``run``, ``created``, ``wall_s``,
        ``environment`` (:func:`.env.environment`), ``config`` (with the ``method`` text),
        ``reference`` (Keras top-1 from training), ``targets`` (name -> status and detail),
        ``skipped`` (target, reason), ``accuracy`` (top-1 and per-class per artifact x
        target), ``results`` (one row per artifact x target x threads x batch; latency in
        ms, throughput in img/s, load ms, RSS MiB, bytes). :mod:`.report` writes it out.

    Raises:
        RunDirError: no manifest, no artifacts, or an artifact changed since export.
        ConfigError: a bad config.
    """
    started = time.perf_counter()
    load_start = _load_avg()
    say = progress or (lambda line: None)
    run = RunDir(run_dir)
    manifest = load_manifest(run)
    if not manifest.get("artifacts"):
        raise RunDirError(f"{run.root} has no exported artifacts (run `edgesmith export {run.root}` first)")
    status = detect_targets(TARGETS)
    skipped = [{"target": t, "reason": ("not requested" if s.usable else s.detail)
                if t not in config.targets else s.detail}
               for t, s in status.items() if t not in config.targets or not s.usable]
    usable = tuple(t for t in config.targets if status[t].usable)
    cells, no_artifact = _cells(run, manifest, usable)
    skipped += no_artifact
    spec = DataSpec.from_dict(manifest["dataset"])
    if config.limit_test is not None:
        spec = DataSpec(spec.source, spec.limit_train, config.limit_test, spec.seed)
    test = load_split(spec, "test")
    class_names = list(manifest["dataset"].get("class_names") or test.class_names)
    say(f"test split: {len(test)} images; {len(cells)} artifact x target pairs, threads {list(config.threads)}, "
        f"batches {list(config.batches)}")

    results, accuracy, sizes = [], [], {}
    with tempfile.TemporaryDirectory(prefix="edgesmith-bench-") as tmp:
        workdir = Path(tmp)
        np.save(workdir / "images.npy", test.images)
        np.save(workdir / "labels.npy", test.labels)
        plan = [(art, target, t) for art, target in cells
                for t in ((max(config.threads),) if target in GPU_TARGETS else config.threads)]
        per_pass = {"runs": -(-config.runs // config.passes), "batch_runs": -(-config.batch_runs // config.passes)}
        acc_by, dead, merged, probes = {}, set(), {}, []
        for p in range(config.passes):
            for art, target, t in plan:
                if (art["name"], target) in dead:
                    continue
                path = verify_file(run, art)
                if art["name"] not in sizes:
                    sizes[art["name"]] = gzip_size(path)
                tag = f"{art['name']}-{target}-t{t}"
                cell_start = time.perf_counter()
                need_acc = (art["name"], target) not in acc_by
                job = {"path": str(path), "target": target, "threads": t, "batches": list(config.batches),
                       "warmup": config.warmup, **per_pass, "accuracy": need_acc, "data": str(workdir),
                       "num_classes": len(class_names)}
                r = _run_worker(job, workdir, f"{tag}-p{p}")
                if not r["ok"]:
                    dead.add((art["name"], target))
                    skipped.append({"target": target, "artifact": art["name"], "reason": r["reason"]})
                    say(f"  {tag}: skipped ({r['reason']})")
                    continue
                if need_acc:
                    acc = acc_by[(art["name"], target)] = r["accuracy"]
                    accuracy.append({"artifact": art["name"], "target": target, "top1": acc["top1"],
                                     "n_test": len(test), "per_class": {
                                         c: (k / n if n else None)
                                         for c, k, n in zip(class_names, acc["correct"], acc["total"])}})
                m = merged.setdefault((art["name"], target, t), {"art": art, "first": r, "load_ms": [], "rss_peak": [],
                                                                 "rss_model": [], "samples": {}})
                m["load_ms"].append(r["load_ms"])
                probes.append(r["cpu_probe_ms"])
                m.setdefault("probe", []).append(r["cpu_probe_ms"])
                m["rss_peak"].append(r["rss_peak_mib"])
                m["rss_model"].append(r["rss_model_mib"])
                for b, xs in r["samples_ms"].items():
                    m["samples"].setdefault(int(b), []).extend(xs)
                b1 = r["samples_ms"].get("1")
                say(f"  pass {p + 1}/{config.passes} {tag}: top-1 {acc_by[(art['name'], target)]['top1']:.2%}"
                    + (f", p50 {float(np.median(b1)):.3f} ms" if b1 else "")
                    + f", {time.perf_counter() - cell_start:.1f} s")
        for (name, target, t), m in merged.items():
            art, r = m["art"], m["first"]
            for b in config.batches:
                lat = latency_summary(m["samples"][b])
                results.append({
                    "artifact": name, "file": art["file"], "format": art["format"],
                    "precision": art["precision"], "float_parent": art.get("float_parent"),
                    "target": target, "backend": r["backend"], "providers": r["providers"],
                    "threads": t, "batch": b, "top1": acc_by[(name, target)]["top1"], "n_test": len(test),
                    # img/s from the median call: on a shared machine one preempted call must not halve it
                    "latency_ms": lat, "throughput_ips": round(min(b, len(test)) * 1e3 / lat["p50"], 1),
                    "load_ms": float(np.median(m["load_ms"])), "rss_peak_mib": _max(m["rss_peak"]),
                    "rss_model_mib": _max(m["rss_model"]), "bytes": art["bytes"],
                    "gzip_bytes": sizes[name], "cpu_probe_ms": round(float(np.median(m["probe"])), 4)})
    keras_metrics = (manifest.get("stages", {}).get("train") or {}).get("metrics", {})
    env = environment()
    env["load_avg_start"] = load_start
    # median over all cells of the fixed CPU workload timed in each worker (see worker.cpu_probe_ms)
    env["cpu_probe_ms"] = round(float(np.median(probes)), 4) if probes else None
    return {"schema_version": RESULTS_SCHEMA, "run": manifest["run"], "created": now_iso(),
            "wall_s": round(time.perf_counter() - started, 1), "environment": env,
            "config": {"targets": list(config.targets), "threads": list(config.threads),
                       "batches": list(config.batches), "warmup": config.warmup, "runs": config.runs,
                       "batch_runs": config.batch_runs, "passes": config.passes, "n_test": len(test),
                       "method": config.method()},
            "reference": {"name": "keras_fp32", "top1": keras_metrics.get("top1"),
                          "n_test": keras_metrics.get("n_test")},
            "targets": {t: {"usable": s.usable, "detail": s.detail, "requested": t in config.targets}
                        for t, s in status.items()},
            "skipped": skipped, "class_names": class_names, "accuracy": accuracy, "results": results}
