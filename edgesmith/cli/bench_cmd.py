"""``edgesmith bench``: accuracy, latency, throughput and memory of every artifact on every target.

Two modes:

* ``edgesmith bench RUN``: measure, write RUN/bench/{results.json,results.csv,report.md,pareto.png};
* ``edgesmith bench --compare OLD.json NEW.json``: what got better or worse beyond noise.

Exit codes: 0 fine; 1 bad input (one-line ``error:``); 3 a ``--fail-under-accuracy`` /
``--fail-over-latency`` gate failed; 4 ``--compare`` found something worse beyond noise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from edgesmith.core.errors import ConfigError

from ._common import Target, errors, int_list, out

EXIT_GATE = 3
EXIT_REGRESSION = 4

ThreadsOpt = Annotated[str, typer.Option(help="Comma-separated intra-op thread counts; 'all' = every core.")]
RunsOpt = Annotated[int, typer.Option(help="At least this many timed batch-1 runs per artifact, target and thread count.")]
SecondsOpt = Annotated[float, typer.Option(
    help="Seconds of batch-1 timing for all cells together, interleaved in --rounds rounds (longer = steadier).")]
RoundsOpt = Annotated[int, typer.Option(
    help="Interleaved rounds: each visits every cell once, in random order, for a short slice of timed calls.")]
WarmupOpt = Annotated[int, typer.Option(help="Untimed warm-up runs before timing.")]
TargetOpt = Annotated[Target, typer.Option(
    help="Target group when --targets is not given: cpu (litert-cpu, ort-cpu), gpu (ort-cuda, ort-tensorrt) "
         "or auto (all four; missing ones are listed as skipped).")]
TargetsOpt = Annotated[Optional[str], typer.Option(
    help="Comma-separated targets: litert-cpu, ort-cpu, ort-cuda, ort-tensorrt, keras-cpu, keras-gpu, or "
         "groups cpu/gpu/auto/all. Keras targets (TensorFlow reference) run only when named here.")]
BatchOpt = Annotated[str, typer.Option("--batch", help="Comma-separated batch sizes: 1 = latency, larger = throughput.")]
BatchRunsOpt = Annotated[int, typer.Option(help="Timed runs at each batch size > 1.")]
LimitTestOpt = Annotated[Optional[int], typer.Option(help="Use at most N test images (class-balanced).")]
CompareOpt = Annotated[Optional[tuple[Path, Path]], typer.Option(
    help="Compare two results.json files (OLD NEW) instead of measuring; gates then apply to NEW.")]
AccGateOpt = Annotated[Optional[float], typer.Option(
    help=f"Exit {EXIT_GATE} if any artifact's top-1 is below PCT percent.", metavar="PCT")]
LatGateOpt = Annotated[Optional[float], typer.Option(
    help=f"Exit {EXIT_GATE} if any batch-1 p50 latency is above MS milliseconds.", metavar="MS")]
RelTolOpt = Annotated[float, typer.Option(help="--compare: relative noise band for latency/throughput/memory.")]
ProfileOpt = Annotated[bool, typer.Option(
    help="Also write per-operator time profiles (ONNX Runtime profiler; LiteRT op list, XNNPACK coverage and "
         "call split) at the first thread count to RUN/bench/profiles/.")]


def parse_threads(text: str) -> tuple[int, ...]:
    """``"1,all"`` -> ``(1, cores)``; raises ConfigError on anything but integers and 'all'."""
    from edgesmith.runtime import default_threads

    try:
        return tuple(default_threads() if t.strip().lower() == "all" else int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--threads takes comma-separated integers or 'all', got {text!r}") from None


def print_report(report: dict) -> None:
    """The results as a table, then the float -> quantized verdicts and the skipped targets."""
    cfg = report["config"]
    table = Table(title=f"{report['run']}: top-1 on {cfg['n_test']} test images; latency from "
                        f"{cfg.get('seconds', '?')} s of interleaved batch-1 timing in {cfg.get('rounds', '?')} rounds; "
                        f"{report.get('wall_s')} s in all")
    for col in ("artifact", "target", "threads", "batch", "top-1", "p50 ms", "p90 ms", "p99 ms", "img/s",
                "load ms", "RSS MiB", "KiB"):
        table.add_column(col, justify="left" if col in ("artifact", "target") else "right")
    for r in report["results"]:
        lat = r["latency_ms"]
        table.add_row(r["artifact"], r["target"], str(r["threads"]), str(r.get("batch", 1)), f"{r['top1']:.2%}",
                      f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}",
                      f"{r.get('throughput_ips') or 0:,.0f}", f"{r.get('load_ms') or 0:.0f}",
                      "-" if r.get("rss_peak_mib") is None else f"{r['rss_peak_mib']:.0f}",
                      f"{r['bytes'] / 1024:.1f}")
    out.print(table)
    for c in report.get("comparisons", []):
        out.print(f"  {c['quantized']}: {c['verdict']}", highlight=False, markup=False)
    for s in report.get("skipped", []):
        what = f"{s['target']} ({s['artifact']})" if s.get("artifact") else s["target"]
        out.print(f"  skipped {what}: {s['reason']}", highlight=False, markup=False)


def run_bench(run_dir: Path, threads: str, runs: int, warmup: int, limit_test: int | None,
              target: Target | str, *, targets: str | None = None, batches: str = "1",
              batch_runs: int = 30, seconds: float = 30.0, rounds: int = 30) -> dict:
    """Benchmark, write RUN/bench/{results.json,results.csv,report.md,pareto.png}, record it in the manifest.

    Args:
        run_dir: run directory with exported artifacts.
        threads: e.g. ``"1,all"``.
        runs / warmup: least timed and untimed batch-1 calls per cell.
        limit_test: at most this many test images (None: all).
        target: target group (``cpu``, ``gpu``, ``auto``, ``all``) used when ``targets`` is None.
        targets: explicit comma-separated target names or groups.
        batches: e.g. ``"1,64"`` (default ``"1"``: latency only, as `pipeline` has always run it;
            `bench` passes its own ``--batch`` default of ``"1,64"``).
        batch_runs: timed calls per batch size > 1.
        seconds / rounds: batch-1 timing for all cells together, s, interleaved in this many rounds.

    Returns:
        The report dict (see :func:`edgesmith.benchmarks.bench_run`).

    Raises:
        ConfigError: unknown target or bad numbers. RunDirError: not a run or no artifacts.
    """
    from edgesmith.benchmarks import BenchConfig, bench_run, resolve_targets, write_reports
    from edgesmith.core.rundir import RunDir, load_manifest, now_iso, save_manifest

    group = target.value if isinstance(target, Target) else str(target)
    config = BenchConfig(targets=resolve_targets(targets if targets is not None else group),
                         threads=parse_threads(threads), batches=int_list(batches, "--batch"), runs=runs,
                         warmup=warmup, batch_runs=batch_runs, limit_test=limit_test, seconds=seconds,
                         rounds=rounds)
    run = RunDir(run_dir)
    report = bench_run(run, config, progress=lambda line: out.print(line, highlight=False, markup=False))
    paths = write_reports(report, run.bench)
    manifest = load_manifest(run)
    manifest["stages"]["bench"] = {"finished": now_iso(), "reports": [f"bench/{p.name}" for p in paths.values()]}
    save_manifest(run, manifest)
    print_report(report)
    out.print(f"reports: {', '.join(str(p) for p in paths.values())}", highlight=False)
    return report


def print_comparison(old_path: Path, new_path: Path, result: dict) -> None:
    """What changed beyond noise between two results files, worst first."""
    changes = sorted(result["changes"], key=lambda c: (c.better, c.key, c.metric))
    out.print(f"{old_path} -> {new_path}: {result['compared']} rows compared", highlight=False)
    for note in result["notes"]:
        out.print(f"  note: {note}", highlight=False)
    if changes:
        table = Table()
        for col in ("row", "metric", "old", "new", "change", "noise band", ""):
            table.add_column(col, justify="left" if col in ("row", "metric", "") else "right")
        for c in changes:
            table.add_row(c.key, c.metric, f"{c.old:,.4g}", f"{c.new:,.4g}", f"{c.relative:+.1%}", f"±{c.noise:,.3g}",
                          "[green]better[/]" if c.better else "[red]worse[/]")
        out.print(table)
    for k in result["only_old"]:
        out.print(f"  only in old: {k}", highlight=False)
    for k in result["only_new"]:
        out.print(f"  only in new: {k}", highlight=False)
    worse = sum(not c.better for c in changes)
    out.print(f"{worse} worse, {len(changes) - worse} better beyond noise; everything else within noise",
              highlight=False)


def check_gates(report: dict, fail_under_accuracy: float | None, fail_over_latency: float | None) -> None:
    """Print failed gates and exit 3 if any failed."""
    from edgesmith.benchmarks import gate_failures

    fails = gate_failures(report, min_accuracy_pct=fail_under_accuracy, max_latency_ms=fail_over_latency)
    for f in fails:
        out.print(f"[red]gate failed:[/] {f}", highlight=False)
    if fails:
        raise typer.Exit(EXIT_GATE)
    if fail_under_accuracy is not None or fail_over_latency is not None:
        out.print("gates passed", highlight=False)


def bench_cmd(run_dir: Annotated[Optional[Path], typer.Argument(help="Run directory with exported artifacts.")] = None,
              targets: TargetsOpt = None, target: TargetOpt = Target.auto, threads: ThreadsOpt = "1,all",
              batch: BatchOpt = "1,64", runs: RunsOpt = 200, warmup: WarmupOpt = 50,
              batch_runs: BatchRunsOpt = 30, seconds: SecondsOpt = 30.0, rounds: RoundsOpt = 30, limit_test: LimitTestOpt = None,
              compare: CompareOpt = None,
              fail_under_accuracy: AccGateOpt = None, fail_over_latency: LatGateOpt = None,
              rel_tol: RelTolOpt = 0.10, profile: ProfileOpt = False):
    """Benchmark every artifact on every target: top-1 (and per class), latency p50/p90/p99, throughput,
    load time, peak RSS, size. Or compare two results.json files (--compare OLD NEW)."""
    with errors():
        if compare is not None:
            from edgesmith.benchmarks import compare_reports, load_results

            if run_dir is not None:
                raise ConfigError("give either a run directory or --compare OLD NEW, not both")
            old, new = (load_results(p) for p in compare)
            result = compare_reports(old, new, rel_tol=rel_tol)
            print_comparison(compare[0], compare[1], result)
            check_gates(new, fail_under_accuracy, fail_over_latency)
            if any(not c.better for c in result["changes"]):
                raise typer.Exit(EXIT_REGRESSION)
            return
        if run_dir is None:
            raise ConfigError("give a run directory to benchmark (or --compare OLD.json NEW.json)")
        report = run_bench(run_dir, threads, runs, warmup, limit_test, target, targets=targets, batches=batch,
                           batch_runs=batch_runs, seconds=seconds, rounds=rounds)
        if profile:
            from edgesmith.benchmarks.profile import write_profiles

            paths = write_profiles(run_dir, threads=parse_threads(threads)[0], runs=runs)
            out.print(f"profiles: {paths[-1]}", highlight=False)
        check_gates(report, fail_under_accuracy, fail_over_latency)
