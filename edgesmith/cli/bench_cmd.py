"""``edgesmith bench``: accuracy, latency, throughput and memory of every artifact on every runtime.

Two modes:

* ``edgesmith bench RUN``: measure, write RUN/bench/{results.json,results.csv,report.md,pareto.png};
* ``edgesmith bench --compare OLD.json NEW.json``: what got better or worse beyond noise.

Exit codes: 0 fine; 1 bad input (one-line ``error:``); 3 a ``--fail-under-accuracy`` /
``--fail-over-latency`` gate failed; 4 ``--compare`` found something worse beyond noise;
5 with ``--strict``, a ``--device`` could not be measured (unreachable, no edgesmith, dropped).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from edgesmith.core.deprecation import deprecated
from edgesmith.core.errors import ConfigError

from edgesmith.benchmarks.advice import DEFAULT_BUDGET_PTS, DIVERGENCE_PTS
from edgesmith.benchmarks.device_report import LOCAL, device_of
from edgesmith.benchmarks.presets import BENCH_PRESETS, format_threads
from edgesmith.benchmarks.runtimes import GROUPS

from ._common import choice_enum, err, errors, out

EXIT_GATE = 3
EXIT_REGRESSION = 4
EXIT_DEVICE = 5

_D = BENCH_PRESETS["default"]
PresetName = choice_enum("BenchPreset", BENCH_PRESETS)
DeviceKind = choice_enum("DeviceKind", GROUPS)

PresetOpt = Annotated[PresetName, typer.Option(
    "--preset", help="Named settings (default, quick, int8-speed; see docs/benchmarks.md); the options below "
                     "override single values of it.")]
ThreadsOpt = Annotated[Optional[str], typer.Option(
    help=f"Comma-separated intra-op thread counts; 'all' = every core [preset default: {format_threads(_D['threads'])}].")]
RunsOpt = Annotated[Optional[int], typer.Option(
    help=f"At least this many timed batch-1 runs per artifact, runtime and thread count [preset default: {_D['runs']}].")]
SecondsOpt = Annotated[Optional[float], typer.Option(
    help="Seconds of batch-1 timing for all cells together, interleaved in --rounds rounds (longer = steadier) "
         f"[preset default: {_D['seconds']:g}].")]
RoundsOpt = Annotated[Optional[int], typer.Option(
    help="Interleaved rounds: each visits every cell once, in random order, for a short slice of timed calls "
         f"[preset default: {_D['rounds']}].")]
WarmupOpt = Annotated[Optional[int], typer.Option(help=f"Untimed warm-up runs before timing [preset default: {_D['warmup']}].")]
DeviceKindOpt = Annotated[Optional[DeviceKind], typer.Option(
    "--device-kind", help="Which runtimes when --runtime is not given: cpu (litert-cpu, ort-cpu), gpu (ort-cuda, "
                          "ort-tensorrt), auto (all four; missing ones are listed as skipped) or all "
                          "[preset default: auto].")]
RuntimeOpt = Annotated[Optional[str], typer.Option(
    "--runtime", help="Comma-separated runtimes, each a runtime with its execution provider or delegate: "
                      "litert-cpu (LiteRT, XNNPACK), ort-cpu, ort-cuda, ort-tensorrt (ONNX Runtime's CPU, CUDA, "
                      "TensorRT execution providers), keras-cpu, keras-gpu (the TensorFlow reference: run only "
                      "when named here), or the groups cpu/gpu/auto/all.", metavar="LIST")]
# The old spellings, hidden, for one release (a note on stderr when used): runtimes_of().
OldTargetOpt = Annotated[Optional[DeviceKind], typer.Option("--target", hidden=True, help="Deprecated: --device-kind.")]
OldTargetsOpt = Annotated[Optional[str], typer.Option("--targets", hidden=True, help="Deprecated: --runtime.")]


def runtimes_of(runtime: str | None, device_kind=None, old_targets: str | None = None,
                old_target=None) -> str | None:
    """The ``BenchConfig.runtimes`` text the options ask for: ``--runtime``, else ``--device-kind``'s
    group, else None (the preset's). ``--targets`` / ``--target`` (the old names) still count, with a
    one-time note on stderr."""
    if old_targets is not None:
        deprecated("--targets is deprecated, use --runtime")
        runtime = runtime if runtime is not None else old_targets
    if old_target is not None:
        deprecated("--target is deprecated here, use --device-kind (--target names the CPU in export)")
        device_kind = device_kind if device_kind is not None else old_target
    return runtime if runtime is not None else getattr(device_kind, "value", device_kind)
BatchOpt = Annotated[Optional[str], typer.Option(
    "--batch", help=f"Comma-separated batch sizes: 1 = latency, larger = throughput "
                    f"[preset default: {','.join(map(str, _D['batches']))}].")]
BatchRunsOpt = Annotated[Optional[int], typer.Option(help=f"Timed runs at each batch size > 1 [preset default: {_D['batch_runs']}].")]
LimitTestOpt = Annotated[Optional[int], typer.Option(help="Use at most N test images (class-balanced).")]
CompareOpt = Annotated[Optional[tuple[Path, Path]], typer.Option(
    help="Compare two results.json files (OLD NEW) instead of measuring; gates then apply to NEW.")]
AccGateOpt = Annotated[Optional[float], typer.Option(
    help=f"Exit {EXIT_GATE} if any artifact's top-1 is below PCT percent.", metavar="PCT")]
LatGateOpt = Annotated[Optional[float], typer.Option(
    help=f"Exit {EXIT_GATE} if any batch-1 p50 latency is above MS milliseconds.", metavar="MS")]
RelTolOpt = Annotated[float, typer.Option(help="--compare: relative noise band for latency/throughput/memory.")]
RecommendOpt = Annotated[bool, typer.Option(
    "--recommend", help="Name the artifact to ship for this machine: the fastest batch-1 p50 within "
                        "--accuracy-budget of the float model's top-1, else the smallest; files that tie within "
                        "noise go to the smaller (also in results.json).")]
BudgetOpt = Annotated[float, typer.Option(help="--recommend: accuracy budget in top-1 points.", metavar="PT")]
DeviceOpt = Annotated[Optional[list[str]], typer.Option(
    "--device", help="Where to measure, repeatable: 'local' (this machine, the default) or "
                     "ssh://[user@]host[:port][?python=PATH&name=NAME] (edgesmith copies the artifacts there and runs the "
                     "workers over your ssh; the device needs `pip install edgesmith`). All devices go into one report.")]
RemotePythonOpt = Annotated[Optional[str], typer.Option(
    help="The Python of ssh:// devices that name none with ?python= [default: python3].", metavar="PATH")]
DeviceParallelOpt = Annotated[Optional[int], typer.Option(
    help="SSH devices measured at the same time [default: all]; 'local' is always measured alone, first. Use 1 "
         "when two ssh:// devices are one machine.", metavar="N")]
StrictOpt = Annotated[bool, typer.Option(
    help=f"Exit {EXIT_DEVICE} when a --device could not be measured (default: report its reason, keep the others).")]
BoardOpt = Annotated[Optional[list[str]], typer.Option(
    "--board", help="Instead of measuring here: does the run's Cortex-M file (export --target cortex-m) fit this "
                    "microcontroller board's RAM and flash, and its estimated latency (MACs x cycles per MAC / clock, "
                    "an estimate with its band; docs/mcu.md). Repeatable: nucleo-l4r5zi, nano33ble, pico, esp32-s3, ...")]
McuRuntimeOpt = Annotated[Optional[str], typer.Option(
    help="--board: the inference engine of the estimate: tflm-cmsis-nn (default), x-cube-ai, plumerai, bosch-hale, "
         "microtvm-cmsis-nn, onnc.")]
DataOpt = Annotated[Optional[str], typer.Option(
    "--data", help="Test images from this dataset folder (or name) instead of the one the run recorded.",
    metavar="DIR")]
LatencyOnlyOpt = Annotated[bool, typer.Option(
    "--latency-only", help="Time generated inputs of the model's shape: no dataset, no accuracy.", metavar="")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Write the reports to DIR instead of RUN/bench (the run is left unchanged).", metavar="DIR")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print the results as JSON on stdout (human lines go to stderr).", metavar="")]
ProfileOpt = Annotated[bool, typer.Option(
    help="Also write per-operator time profiles (ONNX Runtime profiler; LiteRT op list, XNNPACK coverage and "
         "call split) at the first thread count to RUN/bench/profiles/.")]


def print_report(report: dict, out=out) -> None:
    """The results as a table, then the float -> quantized verdicts and the skipped runtimes (on ``out``)."""
    cfg = report["config"]
    acc = "latency only (generated inputs, no accuracy)" if cfg.get("latency_only") else \
        f"top-1 on {cfg['n_test']} test images"
    table = Table(title=f"{report['run']}: {acc}; latency from "
                        f"{cfg.get('seconds', '?')} s of interleaved batch-1 timing in {cfg.get('rounds', '?')} rounds; "
                        f"{report.get('wall_s')} s in all")
    by_device = {device_of(r) for r in report["results"]} != {LOCAL}
    for col in ("device",) * by_device + ("artifact", "runtime", "threads", "batch", "top-1", "p50 ms", "p90 ms",
                                          "p99 ms", "img/s", "load ms", "RSS MiB", "KiB"):
        table.add_column(col, justify="left" if col in ("device", "artifact", "runtime") else "right")
    for r in report["results"]:
        lat = r["latency_ms"]
        table.add_row(*(device_of(r),) * by_device, r["artifact"], r["runtime"], str(r["threads"]), str(r.get("batch", 1)),
                      "-" if r["top1"] is None else f"{r['top1']:.2%}",
                      f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}",
                      f"{r.get('throughput_ips') or 0:,.0f}", f"{r.get('load_ms') or 0:.0f}",
                      "-" if r.get("rss_peak_mib") is None else f"{r['rss_peak_mib']:.0f}",
                      f"{r['bytes'] / 1024:.1f}")
    out.print(table)
    at = (lambda e: f"[{device_of(e)}] ") if by_device else (lambda e: "")
    for c in report.get("comparisons", []):
        out.print(f"  {at(c)}{c['quantized']}: {c['verdict']}", highlight=False, markup=False)
    for d in report.get("divergences", []):
        out.print(f"  [yellow]accuracy differs from export:[/] {d['artifact']} on {d['runtime']}: top-1 "
                  f"{d['top1']:.2%} here vs {d['export_top1']:.2%} at export on the first {d['n']} test images "
                  f"({d['delta_pts']:+.2f} pt, over {DIVERGENCE_PTS} pt). Likely cause: {d['cause']}", highlight=False)
    rec = report.get("recommendation")
    if rec:
        out.print(f"[bold]{rec.get('sentence') or rec['artifact']}[/]", highlight=False)
        out.print(f"  why: {rec['why']}", highlight=False, markup=False)
        if rec.get("tie_note"):
            out.print(f"  {rec['tie_note']}", highlight=False, markup=False)
    for s in report.get("skipped", []):
        what = f"{s['runtime']} ({s['artifact']})" if s.get("artifact") else s["runtime"]
        out.print(f"  {at(s)}skipped {what}: {s['reason']}", highlight=False, markup=False)
    for d in report.get("devices", []):
        if not d["ok"]:
            out.print(f"  [red]device failed:[/] {d['reason']}", highlight=False)


def run_bench(run_dir: Path, preset: str = "default", *, recommend_budget: float | None = None,
              devices: list | None = None, device_parallel: int | None = None, out_dir: Path | None = None,
              console=out, **overrides) -> dict:
    """Benchmark with preset ``preset`` and ``overrides`` (BenchConfig fields, None = the preset's),
    print the table; the library writes RUN/bench/ and records the stage.

    Raises:
        ConfigError: unknown preset, runtime or bad numbers. RunDirError: not a run or no artifacts.
    """
    from edgesmith.benchmarks import bench, bench_config

    config = bench_config(preset, **overrides)
    report, paths = bench(run_dir, config, progress=lambda line: console.print(line, highlight=False, markup=False),
                          recommend_budget=recommend_budget, devices=devices, device_parallel=device_parallel,
                          out_dir=out_dir)
    print_bench(report, paths, console)
    report["report_files"] = {k: str(p) for k, p in paths.items()}
    return report


def print_bench(report: dict, paths: dict, console=out) -> None:
    """The results (:func:`print_report`), then the report files the bench wrote."""
    print_report(report, console)
    console.print(f"reports: {', '.join(str(p) for p in paths.values())}", highlight=False)


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


def print_boards(run_dir: Path, boards: list[str], runtime: str | None, console=out) -> list[dict]:
    """``--board``: fit and estimated latency of the run's Cortex-M file(s) per board (nothing is measured).

    Returns :func:`~edgesmith.benchmarks.board_report.board_report`'s rows (for ``--json``)."""
    from edgesmith.benchmarks.board_report import board_report

    rows = board_report(run_dir, [b for v in boards for b in v.split(",") if b.strip()], runtime)
    table = Table(title="microcontroller boards: fit (need / have) from TFLite Micro's arena; latency is an ESTIMATE, "
                        "not a measurement")
    for col in ("artifact", "TFLM top-1", "board", "core @ MHz", "RAM KB", "flash KB", "fits", "est. ms", "band",
                "basis"):
        table.add_column(col, justify="left" if col in ("artifact", "board", "core @ MHz", "fits", "basis") else "right")
    for r in rows:
        lat = r["latency"]
        fits = "yes" if r["fits"] else "no (" + ", ".join(k for k, ok in (("RAM", r["fits_ram"]),
                                                                           ("flash", r["fits_flash"])) if not ok) + ")"
        table.add_row(r["artifact"], f"{r['tflm_top1']:.2%}", r["board"], f"{r['core']} @ {r['clock_mhz']}",
                      f"{r['ram_need_kb']:.0f} / {r['ram_kb']}", f"{r['flash_need_kb']:.0f} / {r['flash_kb']}", fits,
                      "-" if lat["ms"] is None else f"{lat['ms']:,.1f}",
                      "-" if lat["ms"] is None else f"{lat['low_ms']:,.0f}-{lat['high_ms']:,.0f}",
                      f"{lat['basis']} ({', '.join(lat['points'])})" if lat["points"] else lat["basis"])
    console.print(table)
    r = rows[0]
    console.print(f"  {r['macs']:,} MACs; arena {r['arena_bytes']:,} B measured under TFLite Micro on this 64-bit host, "
                  f"{r['recommended_arena_bytes']:,} B reserved (+ CMSIS-NN scratch, +10%); latency = MACs x cycles/MAC "
                  f"({rows[0]['latency']['runtime']}) / clock, from published MLPerf Tiny rows (docs/mcu.md); TFLM "
                  f"top-1 on {r['tflm_n']:,} test images at export (its x86 time is no device time and is not shown)",
                  highlight=False, markup=False)
    return rows


def check_gates(report: dict, fail_under_accuracy: float | None, fail_over_latency: float | None,
                console=out) -> None:
    """Print failed gates and exit 3 if any failed."""
    from edgesmith.benchmarks import gate_failures

    fails = gate_failures(report, min_accuracy_pct=fail_under_accuracy, max_latency_ms=fail_over_latency)
    for f in fails:
        console.print(f"[red]gate failed:[/] {f}", highlight=False)
    if fails:
        raise typer.Exit(EXIT_GATE)
    if fail_under_accuracy is not None or fail_over_latency is not None:
        console.print("gates passed", highlight=False)


def bench_cmd(run_dir: Annotated[Optional[Path], typer.Argument(help="Run directory with exported artifacts.")] = None,
              preset: PresetOpt = PresetName("default"), runtime: RuntimeOpt = None,
              device_kind: DeviceKindOpt = None, old_targets: OldTargetsOpt = None, old_target: OldTargetOpt = None,
              threads: ThreadsOpt = None, batch: BatchOpt = None, runs: RunsOpt = None, warmup: WarmupOpt = None,
              batch_runs: BatchRunsOpt = None, seconds: SecondsOpt = None, rounds: RoundsOpt = None,
              limit_test: LimitTestOpt = None, compare: CompareOpt = None,
              fail_under_accuracy: AccGateOpt = None, fail_over_latency: LatGateOpt = None,
              rel_tol: RelTolOpt = 0.10, profile: ProfileOpt = False, recommend: RecommendOpt = False,
              accuracy_budget: BudgetOpt = DEFAULT_BUDGET_PTS, device: DeviceOpt = None,
              remote_python: RemotePythonOpt = None, device_parallel: DeviceParallelOpt = None,
              strict: StrictOpt = False, board: BoardOpt = None,
              mcu_runtime: McuRuntimeOpt = None, data: DataOpt = None, latency_only: LatencyOnlyOpt = False,
              out_dir: OutOpt = None, as_json: JsonOpt = False):
    """Benchmark every artifact on every runtime: top-1 (and per class), latency p50/p90/p99, throughput,
    load time, peak RSS, size. Or compare two results.json files (--compare OLD NEW)."""
    with errors():
        if compare is not None:
            if run_dir is not None:
                raise ConfigError("give either a run directory or --compare OLD NEW, not both")
            _compare(compare, rel_tol, fail_under_accuracy, fail_over_latency)
            return
        if run_dir is None:
            raise ConfigError("give a run directory to benchmark (or --compare OLD.json NEW.json)")
        if board:
            rows = print_boards(run_dir, board, mcu_runtime, console=err if as_json else out)
            if as_json:
                sys.stdout.write(json.dumps({"boards": rows}, indent=2, default=str) + "\n")
            return
        from edgesmith.benchmarks.devices import parse_devices

        devices = parse_devices(device, remote_python=remote_python) if device else None
        report = run_bench(run_dir, preset.value, devices=devices, device_parallel=device_parallel,
                           runtimes=runtimes_of(runtime, device_kind, old_targets, old_target), threads=threads, batches=batch,
                           runs=runs, warmup=warmup, batch_runs=batch_runs, seconds=seconds, rounds=rounds,
                           limit_test=limit_test, recommend_budget=accuracy_budget if recommend else None,
                           data=data, latency_only=latency_only or None, out_dir=out_dir,
                           console=err if as_json else out)
        if as_json:
            sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
        if profile:
            from edgesmith.benchmarks import bench_config
            from edgesmith.benchmarks.profile import write_profiles

            config = bench_config(preset.value, threads=threads, runs=runs)
            paths = write_profiles(run_dir, threads=config.threads[0], runs=config.runs)
            (err if as_json else out).print(f"profiles: {paths[-1]}", highlight=False)
        check_gates(report, fail_under_accuracy, fail_over_latency, err if as_json else out)
        if strict and any(not d["ok"] for d in report.get("devices", [])):
            raise typer.Exit(EXIT_DEVICE)


def _compare(paths: tuple[Path, Path], rel_tol: float, fail_under_accuracy, fail_over_latency) -> None:
    """``--compare OLD NEW``: print what changed beyond noise; exit 3 on a failed gate, 4 on a regression."""
    from edgesmith.benchmarks import compare_reports, load_results

    old, new = (load_results(p) for p in paths)
    result = compare_reports(old, new, rel_tol=rel_tol)
    print_comparison(paths[0], paths[1], result)
    check_gates(new, fail_under_accuracy, fail_over_latency)
    if any(not c.better for c in result["changes"]):
        raise typer.Exit(EXIT_REGRESSION)
