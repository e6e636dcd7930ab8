"""The benchmark suite: artifacts x runtimes x threads x batch sizes of one run, on its test split.

No TensorFlow in this process: artifacts run through :mod:`edgesmith.runtime` in one child
process per cell (:mod:`.worker`), the test split comes from the TF-free readers, and the
Keras reference, when asked for, is measured in its own child process.

Method (stated in every report):

* the test split is decoded once, before anything is timed;
* top-1 and per-class accuracy: every test image, once per artifact x runtime (the thread
  count and batch size do not change the arithmetic these runtimes do per image);
* every cell (artifact x runtime x threads) has its own worker process (:mod:`.worker`),
  started one at a time and kept alive; cells are then timed **interleaved**: ``rounds``
  rounds, each visiting every cell once in a fresh random order for a short slice of calls,
  while the other workers sleep on a blocking read. A slow spell of the machine (other
  tenants of a virtual machine, frequency changes: seconds long on the machines of
  docs/benchmarks.md) then falls on every cell alike instead of on whichever cell ran at
  the time, and each cell's samples span the whole ``seconds`` of timing;
* batch-1 latency: ``warmup`` untimed calls at start-up, then slices of timed
  ``runner.predict`` calls on one image each (consecutive test images) of
  ``seconds / (rounds x cells)`` each, after 2 untimed calls, GC paused, at least ``runs``
  calls per cell in all; p50/p90/p99, mean and std in ms of all the cell's calls;
* throughput: at each larger batch, ``batch_runs`` timed calls spread over the same rounds;
  img/s = batch / median call time (robust to a preempted call on a shared machine);
* load time: ``runtime.load`` in a fresh process (file in the page cache), ms;
* peak RSS: see :mod:`.worker` (reset-and-read VmHWM around model load and inference);
* sizes: file bytes and gzip -9 bytes;
* GPU runtimes are measured at the largest thread count only (threads drive CPU work only);
* export-time agreement: each artifact x runtime's top-1 on the first ``n`` test images, the
  images export verified it on (one more short-lived worker when ``n`` is below the split),
  is compared with the top-1 the manifest recorded (:func:`.advice.divergences`).
"""
from __future__ import annotations

import gzip
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.datareport import check_split
from edgesmith.core.errors import ConfigError, RunDirError
from edgesmith.core.rundir import RunDir, load_manifest, now_iso, verify_file
from edgesmith.core.stages import keras_metrics
from edgesmith.runtime import default_threads

from .advice import divergences, verify_accuracy
from .schema import RESULTS_SCHEMA
from .stats import latency_summary
from .runtimes import ACCURACY_ONLY, GPU_RUNTIMES, GROUPS, RUNTIME_FORMAT, RUNTIMES



def _default_threads() -> tuple[int, ...]:
    return tuple(sorted({1, default_threads()}))


@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    Attributes:
        runtimes: runtime names from :data:`.runtimes.RUNTIMES` to measure; the others are
            listed as skipped ("not requested").
        threads: intra-op thread counts (default: 1 and every core available).
        batches: batch sizes; 1 gives the latency figures, larger ones the throughput
            (default 1 and 64).
        warmup: untimed batch-1 calls before timing.
        runs: at least this many timed batch-1 calls per cell (one image each); a cell
            whose slices hold fewer calls gets longer slices.
        batch_runs: timed calls at each batch size > 1.
        limit_test: evaluate on at most this many test images (None: the whole split).
        seconds: batch-1 timing time for all cells together, s (split into slices).
        rounds: interleaved rounds over all cells; each cell's batch-1 timing is split into
            this many slices, one per round, and its batch > 1 calls spread over them.
        data: read the test split from this dataset (a folder or a dataset name) instead of
            the one the run recorded (a run copied to a device without its data path).
        latency_only: time generated uint8 inputs of the model's input shape instead of test
            images: no dataset is read and no accuracy is measured (top-1 is None).
    Raises:
        ConfigError: an unknown runtime or a number out of range (named after its CLI option).
    """

    runtimes: tuple[str, ...] = GROUPS["auto"]
    threads: tuple[int, ...] = field(default_factory=_default_threads)
    batches: tuple[int, ...] = (1, 64)
    warmup: int = 50
    runs: int = 200
    batch_runs: int = 30
    limit_test: int | None = None
    seconds: float = 30.0
    rounds: int = 30
    data: str | None = None
    latency_only: bool = False

    def __post_init__(self):
        for t in self.runtimes:
            if t not in RUNTIMES:
                raise ConfigError(f"unknown runtime {t!r}; expected one of {', '.join(RUNTIMES)}")
        if not self.runtimes:
            raise ConfigError("no runtime to measure")
        if not self.threads or min(self.threads) < 1:
            raise ConfigError(f"threads must be positive integers, got {list(self.threads)}",
                              field="BenchConfig.threads")
        if not self.batches or min(self.batches) < 1:
            raise ConfigError(f"batches must be positive integers, got {list(self.batches)}",
                              field="BenchConfig.batches")
        if self.runs < 10:
            raise ConfigError(f"runs must be >= 10 for percentiles to mean anything, got {self.runs}",
                              field="BenchConfig.runs")
        if self.batch_runs < 3:
            raise ConfigError(f"batch_runs must be >= 3, got {self.batch_runs}", field="BenchConfig.batch_runs")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}", field="BenchConfig.rounds")
        if not self.seconds > 0:
            raise ConfigError(f"seconds must be positive, got {self.seconds}", field="BenchConfig.seconds")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}", field="BenchConfig.warmup")
        if self.limit_test is not None and self.limit_test < 1:
            raise ConfigError(f"limit_test must be positive, got {self.limit_test}", field="BenchConfig.limit_test")
        if self.latency_only and self.data is not None:
            raise ConfigError("latency_only reads no dataset; drop data (or latency_only)",
                              field="BenchConfig.latency_only")
        object.__setattr__(self, "threads", tuple(sorted(set(self.threads))))
        object.__setattr__(self, "batches", tuple(sorted(set(self.batches))))

    def method(self) -> str:
        """One paragraph saying how the figures were taken (goes into every report)."""
        big = [b for b in self.batches if b > 1]
        thr = (f" Throughput at batch {', '.join(map(str, big))}: {self.batch_runs} timed calls in all after a short "
               "warm-up, img/s = batch / median call time." if big else "")
        if self.latency_only:
            thr += (" Latency only: the inputs are generated uint8 images of the model's input shape (seeded "
                    "random pixels), no dataset was read and no accuracy was measured.")
        return (f"Each artifact x runtime x thread count has its own process, loaded once; the cells are timed "
                f"interleaved, in {self.rounds} rounds that visit every cell in a fresh random order for one short "
                f"slice of calls (the others idle), so a slow spell of the machine hits all cells alike. Batch-1 "
                f"latency: {self.warmup} warm-up calls per process, then {self.seconds:g} s of timed `predict` "
                f"calls over all cells (at least {self.runs} per cell), on one pre-decoded test image each, 2 untimed "
                f"calls before each slice, GC paused, no CPU pinning; only inference (with the runner's "
                f"uint8 -> tensor conversion) is timed.{thr} Top-1 over the whole test split once per "
                f"artifact x runtime. Peak RSS: kernel VmHWM reset before model load, read after "
                f"inference (model MiB = peak - RSS before load).")


def gzip_size(path: Path) -> int:
    """Bytes of ``path`` after gzip -9 (what pruning actually shrinks)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


def _cells(run: RunDir, manifest: dict, runtimes: tuple[str, ...]) -> tuple[list[tuple[dict, str]], list[dict]]:
    """(artifact record, runtime) pairs to measure, and runtimes with no artifact to run."""
    artifacts = list(manifest["artifacts"])
    if any(RUNTIME_FORMAT[t] == "keras" for t in runtimes) and manifest.get("model"):
        artifacts.append({**manifest["model"], "name": "keras_fp32", "format": "keras", "precision": "fp32",
                          "float_parent": None})
    cells, skipped = [], []
    for t in runtimes:
        fmt = RUNTIME_FORMAT[t]
        mine = [a for a in artifacts if a["format"] == fmt and (t not in ACCURACY_ONLY or "micro" in a)]
        if not mine:
            skipped.append({"runtime": t, "reason": "the run has no Cortex-M file (export --target cortex-m)"
                            if t in ACCURACY_ONLY else f"the run has no {fmt} artifact"})
        cells += [(a, t) for a in mine]
    return cells, skipped


def _spread(total: int, parts: int, i: int) -> int:
    """The ``i``-th of ``parts`` near-equal integer shares of ``total``."""
    return total * (i + 1) // parts - total * i // parts


def _select_runtimes(config: BenchConfig, status: dict) -> tuple[dict, tuple[str, ...], list[dict]]:
    """(``status`` of every runtime, the requested ones usable here, skipped entries for the rest)."""
    skipped = [{"runtime": t, "reason": ("not requested" if s.usable else s.detail)
                if t not in config.runtimes else s.detail}
               for t, s in status.items() if t not in config.runtimes or not s.usable]
    return status, tuple(t for t in config.runtimes if status[t].usable), skipped


def _plan(cells: list[tuple], config: BenchConfig, skipped: list[dict]) -> list[tuple]:
    """``(artifact, runtime, threads)`` per cell to measure, in order: a GPU runtime at the most threads
    only, an accuracy-only one (TFLite Micro on this host) at one thread, and none of those under
    ``latency_only`` (said in ``skipped``, which this extends)."""
    if config.latency_only:  # an accuracy-only cell has nothing to measure
        skipped += [{"runtime": t, "reason": "measures accuracy only, and latency_only measures none"}
                    for t in dict.fromkeys(t for _, t in cells if t in ACCURACY_ONLY)]
        cells = [(a, t) for a, t in cells if t not in ACCURACY_ONLY]
    return [(art, runtime, t) for art, runtime in cells
            for t in ((1,) if runtime in ACCURACY_ONLY else (max(config.threads),) if runtime in GPU_RUNTIMES
                      else config.threads)]


def _start_cells(run: RunDir, plan: list[tuple], config: BenchConfig, workdir: Path, *, num_classes: int,
                 skipped: list[dict], say, device) -> tuple[dict, dict, dict]:
    """Start one worker per (artifact, runtime, threads) on ``device``, one at a time (load time is measured alone).

    Returns ``(workers, hello, file_info)``: key -> worker, key -> (artifact record, its hello
    message), artifact name -> (verified path, gzip bytes). A cell whose runtime fails at load
    becomes a ``skipped`` entry, and so do the other thread counts of that artifact x runtime.
    """
    workers, hello, files, dead = {}, {}, {}, set()
    try:
        for art, runtime, t in plan:
            if (art["name"], runtime) in dead:
                continue
            if art["name"] not in files:  # sha256 check and gzip once per file, not per cell
                path = verify_file(run, art)
                files[art["name"]] = (path, gzip_size(path))
            key = (art["name"], runtime, t)
            need_acc = not config.latency_only and not any(k[:2] == key[:2] for k in workers)  # once per pair
            job = {"path": str(files[art["name"]][0]), "runtime": runtime, "threads": t,
                   "batches": list(config.batches), "warmup": config.warmup, "accuracy": need_acc,
                   "data": str(workdir), "num_classes": num_classes}
            w = device.worker(job, workdir, f"{art['name']}-{runtime}-t{t}")
            r = w.read()
            if not r["ok"]:
                w.close()
                dead.add(key[:2])
                skipped.append({"runtime": runtime, "artifact": art["name"], "reason": r["reason"]})
                say(f"  {w.tag}: skipped ({r['reason']})")
                continue
            workers[key], hello[key] = w, (art, r)
            say(f"  {w.tag}: loaded in {r['load_ms']:.0f} ms")
    except BaseException:
        for w in workers.values():
            w.close()
        raise
    return workers, hello, files


def _time_interleaved(workers: dict, config: BenchConfig, say) -> dict:
    """Time every cell in ``config.rounds`` rounds, each visiting every cell once in a fresh random
    order; returns key -> batch -> samples (ms)."""
    rng = np.random.default_rng(0)
    keys = [k for k in workers if k[1] not in ACCURACY_ONLY]  # their time here is not a device time: never timed
    slice_s = config.seconds / (config.rounds * max(len(keys), 1))
    min_calls = -(-config.runs // config.rounds)
    samples: dict = {key: {} for key in keys}
    if not keys:  # accuracy-only cells alone: nothing to time
        return samples
    timing_start = time.perf_counter()
    for i in range(config.rounds):
        for j in rng.permutation(len(keys)):
            key = keys[j]
            for b in config.batches:
                cmd = ({"op": "time", "batch": 1, "seconds": slice_s} if b == 1 else
                       {"op": "time", "batch": b, "calls": _spread(config.batch_runs, config.rounds, i)})
                if cmd.get("calls") == 0:
                    continue
                xs = workers[key].ask(cmd)["samples_ms"]
                if b == 1 and len(xs) < min_calls:
                    xs += workers[key].ask({"op": "time", "batch": 1, "calls": min_calls - len(xs)})["samples_ms"]
                samples[key].setdefault(b, []).extend(xs)
        if (i + 1) % max(1, config.rounds // 5) == 0 or i + 1 == config.rounds:
            say(f"  timing: round {i + 1}/{config.rounds}, {time.perf_counter() - timing_start:.0f} s")
    return samples


def _rows(hello: dict, finished: dict, samples: dict, files: dict, config: BenchConfig, *, n_test: int,
          class_names: list[str], say) -> tuple[list[dict], list[dict], list[float]]:
    """(result rows, accuracy entries, CPU probe ms per cell) from what the workers measured."""
    results, accuracy, probes, acc_by = [], [], [], {}
    for key in hello:  # plan order: the cell that measured an artifact x runtime's accuracy comes first
        name, runtime, t = key
        (art, r), f = hello[key], finished[key]
        if "accuracy" in f:
            acc = acc_by[(name, runtime)] = f["accuracy"]
            accuracy.append({"artifact": name, "runtime": runtime, "top1": acc["top1"], "n_test": n_test,
                             "per_class": {c: (k / n if n else None)
                                           for c, k, n in zip(class_names, acc["correct"], acc["total"])},
                             "confusion": acc.get("confusion")})  # None from a worker of an older edgesmith
        probes.append(f["cpu_probe_ms"])
        if runtime in ACCURACY_ONLY:  # no latency row: x86 time under TFLite Micro is no microcontroller's time
            accuracy[-1]["note"] = "TFLite Micro on this host: accuracy only, its time is not a device time"
            say(f"  {name}-{runtime}: top-1 {acc['top1']:.2%} on all {n_test} test images (accuracy only)")
            continue
        b1 = samples[key].get(1)
        top1 = (acc_by.get((name, runtime)) or {}).get("top1")  # None: latency only
        say(f"  {name}-{runtime}-t{t}: "
            + ("latency only" if top1 is None else f"top-1 {top1:.2%} on all {n_test} test images")
            + (f", p50 {float(np.median(b1)):.3f} ms over {len(b1)} calls" if b1 else ""))
        for b in config.batches:
            lat = latency_summary(samples[key][b])
            results.append({
                "artifact": name, "file": art["file"], "format": art["format"],
                "precision": art["precision"], "float_parent": art.get("float_parent"),
                "runtime": runtime, "backend": r["backend"], "providers": r["providers"],
                "threads": t, "batch": b, "top1": top1, "n_test": None if top1 is None else n_test,
                # img/s from the median call: on a shared machine one preempted call must not halve it
                "latency_ms": lat, "throughput_ips": round(min(b, n_test) * 1e3 / lat["p50"], 1),
                "load_ms": r["load_ms"], "rss_peak_mib": f["rss_peak_mib"],
                "rss_model_mib": f["rss_model_mib"], "bytes": art["bytes"],
                "gzip_bytes": files[name][1], "cpu_probe_ms": f["cpu_probe_ms"]})
    return results, accuracy, probes


def _test_split(manifest: dict, config: BenchConfig, root: Path):
    """The images to measure on: the recorded (or ``config.data``) test split, or with
    ``latency_only`` 64 generated uint8 images of the model's input shape (labels all 0)."""
    from edgesmith.core.data import Split

    if config.latency_only:
        shape = _input_hwc(manifest)
        n = 64
        images = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
        names = manifest["dataset"].get("class_names")
        if not names:
            out = ((manifest.get("model") or {}).get("output") or {}).get("shape") or [None, 1]
            names = [f"class {i}" for i in range(int(out[-1] or 1))]
        return Split(images=images, labels=np.zeros(n, np.int64), class_names=tuple(names))
    spec = DataSpec.from_dict({**manifest["dataset"], **({"source": config.data} if config.data else {})})
    if config.limit_test is not None:
        spec = replace(spec, limit_test=config.limit_test)
    check_split(spec, root)  # a folder split here must still split as trained: no training image as test
    return load_split(spec, "test")


def _input_hwc(manifest: dict) -> tuple[int, int, int]:
    """(H, W, C) of the model's input, from the model record (or the dataset's image shape)."""
    shape = ((manifest.get("model") or {}).get("input") or {}).get("shape") or []
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[1:]):
        return tuple(shape[1:])
    shape = manifest["dataset"].get("image_shape")
    if shape and len(shape) == 3:
        return tuple(shape)
    raise RunDirError("the manifest records no input shape for the model; latency_only needs one",
                      field="BenchConfig.latency_only")


def bench_run(run_dir: str | Path, config: BenchConfig = BenchConfig(),
              progress: Callable[[str], None] | None = None, *, device=None) -> dict:
    """Measure every artifact of a run on every requested runtime that this machine (or ``device``) has.

    Writes nothing into the run (see :func:`bench` for the reports and the manifest record).

    Args:
        run_dir: a run directory with exported artifacts (``manifest.json``).
        config: what to measure.
        progress: called with one line per finished cell (e.g. to print it).
        device: where to measure, an entered :class:`.devices.Device` (default: this machine;
            see :func:`.devices.bench_devices` for SSH devices and several at once).

    Returns:
        The report (schema :data:`RESULTS_SCHEMA`): ``run``, ``created``, ``wall_s``,
        ``environment`` (:func:`.env.environment`), ``config`` (with the ``method`` text),
        ``reference`` (Keras top-1 from training or import), ``runtimes`` (name -> status and
        detail), ``skipped`` (runtime, reason), ``accuracy`` (top-1 and per-class per artifact x
        runtime), ``results`` (one row per artifact x runtime x threads x batch; latency in
        ms, throughput in img/s, load ms, RSS MiB, bytes), ``verify_accuracy`` (top-1 per
        artifact x runtime on the first ``n`` test images, the ones export verified on) and
        ``divergences`` (artifacts whose top-1 there differs from export's by more than
        :data:`.advice.DIVERGENCE_PTS`, with the likely cause). :mod:`.report` writes it out.

    Raises:
        RunDirError: no manifest, no artifacts, or an artifact changed since export.
        ConfigError: a bad config.
        DataError: the test split cannot be loaded, or a folder split here (``ROOT/<class>/``) no
            longer splits as the run recorded in ``RUN/split.json``.
    """
    from .device_base import LocalDevice

    device = device if device is not None else LocalDevice()
    started = time.perf_counter()
    load_start = device.load_avg()
    say = progress or (lambda line: None)
    run = RunDir(run_dir)
    manifest = load_manifest(run)
    if not manifest.get("artifacts"):
        raise RunDirError(f"{run.root} has no exported artifacts (run `edgesmith export {run.root}` first)")
    status, usable, skipped = _select_runtimes(config, device.detect_runtimes())
    cells, no_artifact = _cells(run, manifest, usable)
    skipped += no_artifact
    plan = _plan(cells, config, skipped)
    test = _test_split(manifest, config, run.root)
    class_names = list(manifest["dataset"].get("class_names") or test.class_names)
    say(("generated inputs (latency only): " if config.latency_only else "test split: ")
        + f"{len(test)} images; {len({(a['name'], t) for a, t, _ in plan})} artifact x runtime pairs, "
        f"threads {list(config.threads)}, batches {list(config.batches)}")
    with tempfile.TemporaryDirectory(prefix="edgesmith-bench-") as tmp:
        workdir = Path(tmp)
        np.save(workdir / "images.npy", test.images)
        np.save(workdir / "labels.npy", test.labels)
        workers, hello, files = _start_cells(run, plan, config, workdir, num_classes=len(class_names),
                                             skipped=skipped, say=say, device=device)
        try:
            samples = _time_interleaved(workers, config, say)
            # finish one at a time: memory, CPU probe, and accuracy where asked
            finished = {key: w.ask({"op": "finish"}) for key, w in workers.items()}
        finally:
            for w in workers.values():
                w.close()
        results, accuracy, probes = _rows(hello, finished, samples, files, config, n_test=len(test),
                                          class_names=class_names, say=say)
        verify = verify_accuracy(accuracy, files, test, manifest, workdir, say=say, threads=min(config.threads),
                                 same_split=not config.latency_only and config.data is None
                                 and config.limit_test in (None, manifest["dataset"].get("limit_test")),
                                 start_worker=device.worker)
    reference = keras_metrics(manifest)
    env = device.environment()
    env["load_avg_start"] = load_start
    # median over all cells of the fixed CPU workload timed in each worker (see worker.cpu_probe_ms)
    env["cpu_probe_ms"] = round(float(np.median(probes)), 4) if probes else None
    return {"schema_version": RESULTS_SCHEMA, "run": manifest["run"], "created": now_iso(),
            "wall_s": round(time.perf_counter() - started, 1), "environment": env,
            "config": {"runtimes": list(config.runtimes), "threads": list(config.threads),
                       "batches": list(config.batches), "warmup": config.warmup, "runs": config.runs,
                       "batch_runs": config.batch_runs, "seconds": config.seconds,
                       "rounds": config.rounds, "n_test": None if config.latency_only else len(test),
                       "latency_only": config.latency_only, "data": config.data,
                       "method": config.method()},
            "reference": {"name": "keras_fp32", "top1": reference.get("top1"), "n_test": reference.get("n_test")},
            "runtimes": {t: {"usable": s.usable, "detail": s.detail, "requested": t in config.runtimes}
                        for t, s in status.items()},
            "skipped": skipped, "class_names": class_names, "accuracy": accuracy,
            "results": [{"device": device.name, **r} for r in results],
            "verify_accuracy": verify, "divergences": divergences({"verify_accuracy": verify, "environment": env},
                                                                  manifest["artifacts"])}
