"""``edgesmith bench``: accuracy and latency of every artifact, with reports."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ._common import Target, errors, int_list, out

ThreadsOpt = Annotated[str, typer.Option(help="Comma-separated intra-op thread counts to benchmark.")]
RunsOpt = Annotated[int, typer.Option(help="Timed batch-1 runs per artifact and thread count.")]
WarmupOpt = Annotated[int, typer.Option(help="Untimed warm-up runs before timing.")]
TargetOpt = Annotated[Target, typer.Option(help="Runtime target: cpu, gpu, or auto (GPU when available).")]
LimitTestOpt = Annotated[Optional[int], typer.Option(help="Use at most N test images (class-balanced).")]


def print_report(report: dict) -> None:
    """The results as a table, then the float -> int8 verdicts."""
    table = Table(title=f"{report['run']}: batch-1 latency, top-1 on {report['config']['n_test']} test images")
    for col in ("artifact", "target", "threads", "top-1", "p50 ms", "p90 ms", "p99 ms", "KiB"):
        table.add_column(col, justify="left" if col in ("artifact", "target") else "right")
    for r in report["results"]:
        lat = r["latency_ms"]
        table.add_row(r["artifact"], r["target"], str(r["threads"]), f"{r['top1']:.2%}", f"{lat['p50']:.3f}",
                      f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", f"{r['bytes'] / 1024:.1f}")
    out.print(table)
    for c in report.get("comparisons", []):
        out.print(f"  {c['verdict']}")


def run_bench(run_dir: Path, threads: str, runs: int, warmup: int, limit_test: int | None,
              target: Target) -> dict:
    """Benchmark, write RUN/bench/{results.json,results.csv,report.md}, record it in the manifest."""
    from edgesmith.benchmarks import BenchConfig, bench_run, write_reports
    from edgesmith.core.rundir import RunDir, load_manifest, now_iso, save_manifest

    config = BenchConfig(threads=int_list(threads, "--threads"), runs=runs, warmup=warmup,
                         limit_test=limit_test, target=target.value)
    run = RunDir(run_dir)
    report = bench_run(run, config)
    paths = write_reports(report, run.bench)
    manifest = load_manifest(run)
    manifest["stages"]["bench"] = {"finished": now_iso(), "reports": [f"bench/{p.name}" for p in paths.values()]}
    save_manifest(run, manifest)
    print_report(report)
    out.print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return report


def bench_cmd(run_dir: Annotated[Path, typer.Argument(help="Run directory with exported artifacts.")],
              threads: ThreadsOpt = "1", runs: RunsOpt = 500, warmup: WarmupOpt = 50,
              limit_test: LimitTestOpt = None, target: TargetOpt = Target.cpu):
    """Benchmark every artifact: top-1 on the test split, batch-1 latency p50/p90/p99, size."""
    with errors():
        run_bench(run_dir, threads, runs, warmup, limit_test, target)
