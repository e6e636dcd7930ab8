"""Do a run's model files predict the same on another CPU? Probabilities here, compared with elsewhere.

Writes the ``(N, classes) float32`` probabilities of every ``.tflite`` / ``.onnx`` file in
``RUN/artifacts`` on the first N class-balanced test images of the run's dataset (one thread,
CPU), and with ``--against`` compares them, file by file, with those written on another machine
or under ``tools/as_avx2.sh`` / ``tools/as_arm64.sh``: top-1 on each side, the share of identical
top-1 predictions, and the largest absolute difference of a probability. TF-free, so it runs on
the device install::

    python tools/same_predictions.py runs/demo-targets native.npz --limit-test 2000
    tools/as_arm64.sh --cpu a72 python tools/same_predictions.py runs/demo-targets a72.npz \\
        --limit-test 2000 --against native.npz

A research script of the project, not part of the installed package; it prints figures and
asserts nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import numpy as np
from edgesmith.export.fidelity import compare

from edgesmith import runtime
from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.rundir import RunDir, load_manifest


def probabilities(run: Path, limit_test: int) -> dict[str, np.ndarray]:
    """``{file name: (N, K) float32 probabilities}`` for every model file of ``run``, and
    ``"labels"``: ``(N,) int64``, on the first ``limit_test`` class-balanced test images."""
    data = load_manifest(RunDir(run))["stages"]["train"]["config"]["data"]
    split = load_split(dataclasses.replace(DataSpec.from_dict(data), limit_test=limit_test), "test")
    out = {"labels": split.labels}
    for f in sorted((run / "artifacts").iterdir()):
        if f.suffix in (".tflite", ".onnx"):
            t = time.perf_counter()
            out[f.name] = runtime.load(f, device="cpu", threads=1).predict(split.images)
            print(f"{platform.machine()}: {f.name} in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def compare_runs(here: dict[str, np.ndarray], there: dict[str, np.ndarray]) -> None:
    """Print, per file in both, top-1 on each side, identical predictions and max |Δ probability|
    (:func:`edgesmith.export.fidelity.compare`, with ``there`` as the reference)."""
    labels = here["labels"]
    if not np.array_equal(labels, there["labels"]):
        raise SystemExit("error: the two files hold different test images")
    print(f"{'file':28s} {'top-1 here':>10s} {'there':>8s} {'same top-1':>10s} {'max |dp|':>9s}")
    for name in sorted(set(here) & set(there) - {"labels"}):
        f = compare(there[name], here[name], labels)
        print(f"{name:28s} {100 * f['top1']:9.2f}% {100 * f['reference_top1']:7.2f}% "
              f"{100 * f['top1_agreement']:9.2f}% {f['max_abs_error']:9.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path, help="where to write the probabilities (.npz)")
    ap.add_argument("--limit-test", type=int, default=2000)
    ap.add_argument("--against", type=Path, help="a .npz this script wrote elsewhere")
    args = ap.parse_args()
    here = probabilities(args.run, args.limit_test)
    np.savez(args.out, **here)
    if args.against:
        compare_runs(here, dict(np.load(args.against)))


if __name__ == "__main__":
    main()
