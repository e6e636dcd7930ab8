"""The project's own performance figures (``make bench``): export time per variant and the wall
time of a full ``edgesmith bench``, run twice to show how far p50 moves between consecutive runs.

Usage::

    python tools/perf_project.py [RUN] [--repeat N] [--skip-export] [BENCH OPTIONS...]

RUN defaults to ``$EDGESMITH_BENCH_RUN``, then ``runs/demo`` (what ``make demo`` writes);
without any, a small synthetic cnn run is trained first. The run is copied into a temporary
folder, never modified. Prints figures; asserts nothing (speed goals are not tests).
Everything runs through the ``edgesmith`` CLI in child processes, so this script never
imports TensorFlow itself. A research script of the project, not part of the installed package.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = ("runs/demo",)


def _cli(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``edgesmith ARGS`` and return (wall seconds, process); raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from edgesmith.cli import main; main()", *args], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"edgesmith {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, proc


def _source_run(arg: str | None, tmp: Path) -> Path:
    for cand in (arg, os.environ.get("EDGESMITH_BENCH_RUN"), *CANDIDATES):
        if cand and (Path(cand) / "manifest.json").is_file():
            return Path(cand)
    run = tmp / "synthetic-cnn"
    print("no trained run found: training a small synthetic cnn first")
    _cli("train", "--data", "synthetic", "--model", "cnn", "--epochs", "2", "--limit-train", "1000",
         "--limit-test", "500", "--out", str(run))
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", help="trained (and optionally exported) run directory to copy")
    p.add_argument("--repeat", type=int, default=2, help="full bench runs (>= 2 shows p50 stability)")
    p.add_argument("--skip-export", action="store_true", help="bench the run's existing artifacts")
    a, extra = p.parse_known_args(argv)  # anything else goes to `edgesmith bench`
    extra = [x for x in extra if x != "--"]
    with tempfile.TemporaryDirectory(prefix="edgesmith-perf-") as tmp:
        src = _source_run(a.run, Path(tmp))
        run = Path(tmp) / "run"
        shutil.copytree(src, run, ignore=shutil.ignore_patterns("bench"))
        print(f"run: {src} (copied to {run})")
        if not a.skip_export:
            wall, _ = _cli("export", str(run))
            arts = json.loads((run / "manifest.json").read_text())["artifacts"]
            print(f"\nexport: {wall:.1f} s wall for {len(arts)} artifacts (incl. start-up, data loading, parity checks)")
            for art in arts:
                print(f"  {art['name']:<24} {art.get('export_seconds', float('nan')):7.2f} s  {art['bytes'] / 1024:8.1f} KiB"
                      f"  {art.get('method', '')}")
        from edgesmith.benchmarks.compare import load_results

        reports = []
        for i in range(max(a.repeat, 1)):
            wall, _ = _cli("bench", str(run), *extra)
            rep = load_results(run / "bench" / "results.json")
            reports.append(rep)
            rows = rep["results"]
            print(f"\nbench #{i + 1}: {wall:.1f} s wall ({rep['wall_s']} s inside bench_run), {len(rows)} rows, "
                  f"{rep['config']['n_test']} test images, load average {rep['environment'].get('load_avg_start')} at start, "
                  f"{rep['environment']['load_avg']} at end, CPU probe {rep['environment'].get('cpu_probe_ms')} ms")
        if len(reports) >= 2:
            print("\np50 of consecutive runs (batch 1): run 1 -> run 2, change")
            key = lambda r: (r["artifact"], r["runtime"], r["threads"], r["batch"])  # noqa: E731
            first = {key(r): r for r in reports[0]["results"] if r["batch"] == 1}
            worst = 0.0
            for r in reports[1]["results"]:
                if r["batch"] != 1 or key(r) not in first:
                    continue
                a_, b_ = first[key(r)]["latency_ms"]["p50"], r["latency_ms"]["p50"]
                worst = max(worst, abs(b_ / a_ - 1))
                pa, pb = first[key(r)].get("cpu_probe_ms"), r.get("cpu_probe_ms")
                probe = f"  (CPU probe {pb / pa - 1:+.0%})" if pa and pb else ""
                print(f"  {r['artifact']:<14} {r['runtime']:<12} t{r['threads']}  {a_:.3f} -> {b_:.3f} ms  "
                      f"{b_ / a_ - 1:+.1%}{probe}")
            print(f"largest p50 change between consecutive runs: {worst:.1%} (bar: 10%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
