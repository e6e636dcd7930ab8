"""One cell of the benchmark matrix (artifact x runtime x threads), in its own long-lived process.

The suite starts ``python -m edgesmith.benchmarks.worker JOB.json`` once per cell and keeps
every cell's process alive for the whole benchmark, so that it can interleave them (see
:mod:`.suite`): each process loads its model once, then times short slices of calls when
told to, and idles on a blocking read in between. Every cell gets its own clean process: a
peak-RSS figure that belongs to this model only, no other session's thread pool, and a
thread setting TensorFlow can still accept (it fixes its pools at start-up). The test split
arrives as ``images.npy`` / ``labels.npy`` already decoded, so nothing but inference is timed.

Protocol: one JSON object per line. The worker answers the job with ``{"ok": true, ...}``
once the model is loaded and warm (or ``{"ok": false, "reason"}`` when the runtime is
unusable), then answers each command line on stdin:

* ``{"op": "time", "batch": B, "calls": N}`` or ``{"op": "time", "batch": B, "seconds": S}``:
  two untimed calls, then ``N`` timed calls (or as many as fit in ``S`` seconds, at least
  one) -> ``{"samples_ms": [...]}``;
* ``{"op": "finish"}`` -> memory figures, the CPU probe and (if the job asked) accuracy over
  the whole split; the worker then exits.

Library output that goes to stdout (TensorFlow, LiteRT) is sent to stderr, so the protocol
stream stays clean.

Memory method (Linux): RSS is read from ``/proc/self/status``. After the imports and the timing
images are in memory, the kernel's peak-RSS mark is reset (``/proc/self/clear_refs`` = 5), the
model is loaded and run; ``rss_peak_mib`` is then VmHWM (the process's peak resident set)
and ``rss_model_mib`` = VmHWM - RSS before loading: what the model, its runtime arena and
inference buffers at the largest batch cost. Elsewhere ``resource.getrusage`` is used and
the mark cannot be reset (``rss_method`` says which).
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable, EdgesmithError
from edgesmith.core.quiet import child_env, filter_text, is_verbose, leave_unfiltered

from .runtimes import ACCURACY_ONLY

ACCURACY_CHUNK = 256  # images per predict call in the (untimed) accuracy pass
TIMING_IMAGES = 1024  # the first images of the split, cycled through by the timed calls
SLICE_WARMUP = 2  # untimed calls before each timed slice (a cell resumes after idling)
WORKER_TIMEOUT_S = 1800  # the parent waits this long for a worker that closed its stdout


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


def time_calls(runner, images: np.ndarray, batch: int, *, warmup: int, runs: int | None = None,
               seconds: float | None = None, offset: int = 0) -> np.ndarray:
    """Latency of ``runner.predict`` on ``batch`` images per call, in ms.

    Args:
        runner: anything with ``predict((N, H, W, C) uint8) -> (N, K) float32``.
        images: ``(M, H, W, C) uint8`` decoded test images, ``M >= batch``; consecutive
            calls take consecutive windows, cycling through them.
        batch: images per call.
        warmup: untimed calls first.
        runs: timed calls; or
        seconds: time calls until this many seconds have passed (at least one call).
        offset: index of the first call's window (so successive slices move on through the images).

    Returns:
        ``(n,) float64`` ms per call. Only the ``predict`` call is inside the timer
        (it includes the runner's uint8 -> input-tensor conversion, as a user's call would);
        the garbage collector is paused while timing.

    Raises:
        ValueError: neither or both of ``runs`` and ``seconds``.
    """
    if (runs is None) == (seconds is None):
        raise ValueError("give exactly one of runs and seconds")
    span = max(len(images) - batch + 1, 1)

    def window(i: int) -> np.ndarray:
        s = (offset + i) * batch % span
        return images[s:s + batch]

    for i in range(warmup):
        runner.predict(window(i))
    out: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = None if seconds is None else time.perf_counter_ns() + int(seconds * 1e9)
        i = warmup
        while (len(out) < runs) if runs is not None else (not out or time.perf_counter_ns() < deadline):
            x = window(i)
            t0 = time.perf_counter_ns()
            runner.predict(x)
            out.append((time.perf_counter_ns() - t0) / 1e6)
            i += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return np.asarray(out, dtype=np.float64)


def accuracy(runner, images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Top-1 and per-class accuracy over the whole split, predicted in chunks of 256 (untimed).

    Returns:
        ``top1`` (fraction), ``correct`` and ``total`` per class (lists of length ``num_classes``),
        and ``confusion``: ``num_classes`` lists of ``num_classes`` counts (row = true class, column =
        predicted; :func:`edgesmith.core.perclass.confusion_matrix`).
    """
    from edgesmith.core.perclass import confusion_matrix

    preds = np.concatenate([runner.predict(images[i:i + ACCURACY_CHUNK]).argmax(1)
                            for i in range(0, len(images), ACCURACY_CHUNK)])
    hit = preds == labels
    correct = np.bincount(labels[hit], minlength=num_classes)
    total = np.bincount(labels, minlength=num_classes)
    return {"top1": float(hit.mean()), "correct": correct.tolist(), "total": total.tolist(),
            "confusion": confusion_matrix(labels, preds, num_classes).tolist()}


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


def load_runner(path: str, runtime: str, threads: int):
    """Load ``path`` for a benchmark runtime, checking the runtime is what actually runs.

    Raises:
        BackendUnavailable: the runtime's library or device is missing, or ONNX Runtime
            fell back to another execution provider than the one asked for.
    """
    if runtime == "tflm":
        from edgesmith.runtime.tflm import TflmRunner

        return TflmRunner(path)
    if runtime.startswith("keras-"):
        from .keras_ref import KerasRunner

        return KerasRunner(path, device=runtime.split("-")[1], threads=threads)
    from edgesmith.runtime import load

    if runtime == "litert-cpu" or runtime == "ort-cpu":
        return load(path, device="cpu", threads=threads)
    from .runtimes import ORT_PROVIDER

    want = ORT_PROVIDER[runtime]
    runner = load(path, device="gpu", threads=threads, providers=[want])
    if runner.providers[0] != want:
        raise BackendUnavailable(f"onnxruntime fell back to {runner.providers[0]} instead of {want} "
                                 "(GPU libraries failed to load)")
    return runner


class Cell:
    """A loaded artifact on one runtime, ready to be timed in slices (the worker's state).

    ``Cell.open(job)`` loads the model from ``job`` (path, runtime, threads, batches, warmup,
    accuracy, data, num_classes), reading the timing images before the peak-RSS mark is
    reset, and warms it up: ``warmup`` calls at batch 1 and a few at each larger batch.

    Raises:
        BackendUnavailable: the runtime is unusable here (see :func:`load_runner`).
    """

    def __init__(self, job: dict, runner, images: np.ndarray, load_ms: float, rss_before, reset: bool):
        self.job, self.runner, self.images = job, runner, images
        self.load_ms, self.rss_before, self.reset = load_ms, rss_before, reset
        self.offsets: dict[int, int] = {}

    @classmethod
    def open(cls, job: dict) -> "Cell":
        images = np.array(np.load(Path(job["data"]) / "images.npy", mmap_mode="r")[:TIMING_IMAGES])
        rss_before, _ = _rss_mib()
        reset = _reset_peak_rss()
        t0 = time.perf_counter()
        runner = load_runner(job["path"], job["runtime"], job["threads"])
        cell = cls(job, runner, images, (time.perf_counter() - t0) * 1e3, rss_before, reset)
        for b in (() if job["runtime"] in ACCURACY_ONLY else job["batches"]):  # never timed: no warm-up
            cell.time(b, calls=0, warmup=job["warmup"] if b == 1 else max(3, -(-job["warmup"] // b)))
        return cell

    def hello(self) -> dict:
        return {"ok": True, "load_ms": round(self.load_ms, 2), "backend": self.runner.backend,
                "providers": list(getattr(self.runner, "providers", ()) or ())}

    def time(self, batch: int, *, calls: int | None = None, seconds: float | None = None,
             warmup: int = SLICE_WARMUP) -> list[float]:
        """One slice: ``warmup`` untimed calls, then ``calls`` timed ones (or ``seconds`` worth); ms each."""
        b = min(batch, len(self.images))
        off = self.offsets.get(b, 0)
        samples = time_calls(self.runner, self.images, b, warmup=warmup, runs=calls, seconds=seconds, offset=off)
        self.offsets[b] = off + warmup + len(samples)
        return [round(float(x), 5) for x in samples]

    def finish(self) -> dict:
        """Memory figures (before the accuracy pass, whose 256-image chunks would inflate the
        peak), the CPU probe, and accuracy over the whole split when the job asks for it."""
        _, peak = _rss_mib()
        out = {"rss_peak_mib": round(peak, 1) if peak is not None else None,
               "rss_model_mib": round(peak - self.rss_before, 1) if (self.reset and peak and self.rss_before) else None,
               "rss_method": "proc-vmhwm-reset" if self.reset else "getrusage-maxrss",
               "cpu_probe_ms": round(cpu_probe_ms(), 4)}
        if self.job["accuracy"]:
            data = Path(self.job["data"])
            out["accuracy"] = accuracy(self.runner, np.load(data / "images.npy"), np.load(data / "labels.npy"),
                                       self.job["num_classes"])
        return out


def measure(job: dict) -> dict:
    """Run one cell start to finish, without interleaving (the suite interleaves; this is for
    one-off use and tests). ``job`` as for :meth:`Cell.open`, plus ``runs`` (batch-1 calls)
    and ``batch_runs`` (calls at each larger batch).

    Returns:
        ``{"ok": True, load_ms, backend, providers, samples_ms {batch: [ms per call]}, rss_*,
        cpu_probe_ms, accuracy?}`` or ``{"ok": False, "reason": ...}`` when the runtime turned
        out to be unusable.
    """
    try:
        cell = Cell.open(job)
    except EdgesmithError as e:  # as in serve(): an unusable runtime is a skip
        return {"ok": False, "reason": str(e)}
    samples = {str(b): cell.time(b, calls=job["runs"] if b == 1 else job["batch_runs"], warmup=0)
               for b in job["batches"]}
    return {**cell.hello(), "samples_ms": samples, **cell.finish()}


def serve(job: dict, send, commands) -> None:
    """Open the cell, answer ``commands`` (dicts) until ``finish``; ``send`` takes each reply dict."""
    try:
        cell = Cell.open(job)
    except EdgesmithError as e:
        send({"ok": False, "reason": str(e)})
        return
    send(cell.hello())
    for cmd in commands:
        if cmd["op"] == "time":
            send({"samples_ms": cell.time(int(cmd["batch"]), calls=cmd.get("calls"), seconds=cmd.get("seconds"))})
        elif cmd["op"] == "finish":
            send(cell.finish())
            return
        else:
            raise ValueError(f"unknown worker command {cmd!r}")


class WorkerProcess:
    """The parent's handle on one cell's worker process (JSON lines over its stdin/stdout).

    Raises (from :meth:`read` / :meth:`ask`):
        RuntimeError: the worker died or reported a bug (its stderr / traceback attached).
    """

    def __init__(self, job: dict, workdir: Path, tag: str):
        self.tag = tag
        job_file = workdir / f"{tag}.job.json"
        job_file.write_text(json.dumps(job))
        self.err_path = workdir / f"{tag}.stderr.txt"
        self._err = open(self.err_path, "w")
        # as quiet (or --verbose) as the command; its stderr goes to err_path, shown only if it dies
        env = {**os.environ, **child_env()}
        if not is_verbose():
            env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        # -P (3.11+): no current directory on sys.path, so a source checkout's edgesmith/ folder
        # cannot shadow the installed package in the worker
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        self.proc = subprocess.Popen([sys.executable, *safe_path, "-m", "edgesmith.benchmarks.worker", str(job_file)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     env=env)

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=WORKER_TIMEOUT_S)
            self._err.flush()
            raise RuntimeError(f"benchmark worker for {self.tag} died (exit {self.proc.returncode}):\n"
                               f"{filter_text(self.err_path.read_text(errors='replace'))[-3000:]}")
        msg = json.loads(line)
        if "bug" in msg:
            self.close()
            raise RuntimeError(f"benchmark worker for {self.tag} failed:\n{msg['bug']}")
        return msg

    def ask(self, cmd: dict) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._err.close()


def main(argv: list[str]) -> int:
    (job_file,) = argv
    job = json.loads(Path(job_file).read_text())
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr; the protocol keeps the real stdout
    sys.stdout = sys.stderr
    leave_unfiltered()  # stderr is the parent's log file; no filter process inside the timed load

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        serve(job, send, (json.loads(line) for line in sys.stdin if line.strip()))
    except Exception:  # a bug: hand the traceback to the parent, which raises
        send({"ok": False, "bug": traceback.format_exc()})
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
