"""``edgesmith optimize``: export candidates of a run under a time budget, bench them together, pick one.

Steps:

1. copy the run (model, config, manifest; no artifacts) into ``OUT/`` and into one scratch copy
   per candidate (:func:`.space.candidates`);
2. export each candidate in its scratch copy (:func:`edgesmith.export.export`: converted and
   verified against the float Keras model), while the time budget allows: a candidate starts
   only when the slowest export so far would still finish, leaving the bench its share;
3. gather every file into ``OUT/artifacts/``, renamed after its candidate
   (``model_int8_entropy.onnx``), one export stage in ``OUT/manifest.json`` (each record adds
   ``candidate`` and the ``export_command`` that remakes it); float parents are taken from the
   first candidate only;
4. bench ``OUT`` once (:func:`edgesmith.benchmarks.bench`, interleaved timing: every candidate
   sees the same machine; CPU runtimes, and GPU ones where present, at one thread) on this
   machine or ``--device``\\ s, with the recommendation rule of
   ``bench --recommend``: the fastest batch-1 p50 within the accuracy budget, else the smallest;
5. write ``OUT/optimize.md`` / ``optimize.json``: the Pareto set (top-1 vs batch-1 p50 at one
   thread), the recommended file and the exact ``edgesmith export`` command that remakes it.

Accuracy for the choice is the bench's top-1 on the run's test split, as for ``bench --recommend``;
the fallback candidate chooses its float layers on held-out training images only.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgesmith.core.errors import EdgesmithError, RunDirError
from edgesmith.core.fsutil import atomic_path, write_json
from edgesmith.core.rundir import (
    RunDir,
    now_iso,
    require_model,
    save_manifest,
)
from edgesmith.core.runlock import LOCK_NAME
from edgesmith.core.stages import ExportStage, record_stage

from .space import Candidate, OptimizeConfig, candidates, export_command

BENCH_SHARE = 0.25  # of the budget kept for the bench (its timing seconds scale with the budget)
MIN_BENCH_SECONDS = 5.0  # interleaved batch-1 timing, s, however short the budget
BENCH_CELL_S = 4.0  # estimated seconds per artifact x runtime outside the timing (start-up, top-1 pass)


@dataclass
class Outcome:
    """One candidate's export: ``status`` ``done``, ``failed`` (``error`` says why) or ``skipped`` (budget)."""

    candidate: Candidate
    status: str
    seconds: float = 0.0
    error: str = ""
    records: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"label": self.candidate.shown, "why": self.candidate.why, "status": self.status,
                "seconds": round(self.seconds, 1), "error": self.error}


def _copy_run(run: RunDir, manifest: dict, dest: Path, name: str | None = None) -> None:
    """``dest``: a copy of the run (``manifest`` is its manifest) without artifacts or bench results
    (export writes into it), named ``name``."""
    shutil.copytree(run.root, dest, ignore=shutil.ignore_patterns(run.artifacts.name, run.bench.name, "*.tmp*",
                                                                  f"{LOCK_NAME}*"))
    stages = {k: v for k, v in manifest["stages"].items() if k not in ("export", "bench")}
    save_manifest(RunDir(dest), {**manifest, "artifacts": [], "run": name or manifest["run"], "stages": stages})


def _renamed(record: dict, label: str) -> tuple[str, str]:
    """(artifact name, file name) of ``record`` in the gathered run: the label appended."""
    file = Path(record["file"]).name
    if not label:
        return record["name"], file
    stem, suffix = file.rsplit(".", 1)
    return f"{record['name']}_{label}", f"{stem}_{label}.{suffix}"


def _gather(outcomes: list[Outcome], scratch: dict[str, Path], staging: Path, run_arg: str) -> list[dict]:
    """Move the candidates' files into ``staging`` and return their records, renamed, with commands."""
    out, seen = [], set()
    for o in outcomes:
        label = o.candidate.label
        for r in o.records:
            if label and r["variant"] == "fp32":
                continue  # every candidate re-made the float parent: keep the first candidate's
            if label == "fallback" and not r.get("float_layers"):
                continue  # the budget held with everything int8: the same file as the first candidate's
            if r["sha256"] in seen:
                continue
            seen.add(r["sha256"])
            name, file = _renamed(r, label)
            shutil.copyfile(scratch[label] / r["file"], staging / file)
            out.append({**r, "name": name, "file": f"artifacts/{file}", "candidate": o.candidate.shown,
                        "export_command": export_command(run_arg, r, o.candidate)})
    return out


def _bench_seconds(config: OptimizeConfig) -> float:
    return max(MIN_BENCH_SECONDS, min(30.0, BENCH_SHARE * config.budget_s / 2))


def _export_all(run: RunDir, manifest: dict, plan: list[Candidate], config: OptimizeConfig, scratch_root: Path,
                *, deadline: float, say) -> tuple[list[Outcome], dict[str, Path]]:
    """Export each candidate into its own scratch copy while the budget allows."""
    from edgesmith.export import export

    outcomes, scratch, slowest = [], {}, 0.0
    reserve = _bench_seconds(config) + BENCH_CELL_S * 12
    for i, cand in enumerate(plan):
        left = deadline - time.monotonic()
        if i and slowest + reserve > left:
            outcomes.append(Outcome(cand, "skipped", error=f"{left:.0f} s left, an export takes up to "
                                                         f"{slowest:.0f} s and the bench needs ~{reserve:.0f} s"))
            say(f"skip {cand.label}: out of time budget")
            continue
        dest = scratch_root / (cand.label or "first")
        _copy_run(run, manifest, dest)
        say(f"candidate {cand.label or '(first)'}: {cand.why}")
        started = time.monotonic()
        try:
            records = export(dest, cand.config, log=lambda m: say("  " + m.strip()))
        except EdgesmithError as e:
            if not i:
                raise  # without the first candidate there is no float parent to compare with
            outcomes.append(Outcome(cand, "failed", time.monotonic() - started, str(e)))
            say(f"  failed: {e}")
            continue
        took = time.monotonic() - started
        slowest = max(slowest, took)
        scratch[cand.label] = dest
        outcomes.append(Outcome(cand, "done", took, records=records))
    return outcomes, scratch


def optimize(run_dir: str | Path, out_dir: str | Path, config: OptimizeConfig = OptimizeConfig(), *,
             devices=None, limit_test: int | None = None, progress: Callable[[str], None] | None = None,
             plot: bool = True) -> dict:
    """Search export candidates of a run for the file to ship on the target, within a time budget.

    Side effects: writes ``out_dir`` (built under a temporary name, renamed when done): a run
    directory whose artifacts are every candidate's files, with ``bench/`` (the bench reports
    and ``pareto.png``), ``optimize.json`` and ``optimize.md``. The run itself is not changed.

    Example::

        result = optimize("runs/resnet8", "runs/resnet8-opt", OptimizeConfig(budget_s=600))
        print(result["recommendation"]["export_command"])

    Args:
        run_dir: a trained (or imported) run directory.
        out_dir: where to write; must not exist.
        config: the search space and budgets (:class:`.space.OptimizeConfig`).
        devices: measure on these devices (:func:`edgesmith.benchmarks.devices.parse_devices`);
            None: this machine.
        limit_test: bench on at most this many test images (class-balanced); None: all.
        progress: called with one-line progress messages.
        plot: draw ``bench/pareto.png`` (needs matplotlib).

    Returns:
        ``optimize.json``'s content: ``config``, ``candidates`` (label, status, seconds, error,
        artifacts), ``pareto`` (one dict per non-dominated batch-1 row at one thread: artifact,
        runtime, top1, p50_ms, bytes, export_command), ``recommendation`` (the bench's, plus
        ``export_command``), ``wall_s``, ``budget_s``.

    Raises:
        RunDirError: no trained run at ``run_dir``, or ``out_dir`` exists.
        ConfigError: a bad config.
        ParityError / DataError: the first candidate's export failed (later ones are reported).
    """
    from edgesmith.benchmarks import bench, bench_config
    from edgesmith.benchmarks.runtimes import GROUPS

    started = time.monotonic()
    deadline = started + config.budget_s
    say = progress or (lambda m: None)
    run, out = RunDir(run_dir), RunDir(out_dir)
    manifest, _ = require_model(run)
    if out.root.exists():
        raise RunDirError(f"{out.root} exists; optimize writes a new directory (choose another out_dir)",
                          field="optimize.out_dir")
    plan = candidates(config)
    with tempfile.TemporaryDirectory(prefix="edgesmith-optimize-") as tmp, atomic_path(out.root) as staging:
        outcomes, scratch = _export_all(run, manifest, plan, config, Path(tmp), deadline=deadline, say=say)
        _copy_run(run, manifest, staging, out.root.name)
        (staging / run.artifacts.name).mkdir()
        records = _gather(outcomes, scratch, staging / run.artifacts.name, str(run_dir))
        record_stage(staging, ExportStage(config={"optimize": config.to_dict()}, sources={}), artifacts=records)
        left = deadline - time.monotonic()
        seconds = max(MIN_BENCH_SECONDS, min(_bench_seconds(config), left - BENCH_CELL_S * len(records)))
        # the CPU runtimes, and the GPU ones where the device has them (a Jetson's TensorRT), at one thread;
        # for a board, TFLite Micro's accuracy on this host (no time: x86 is no microcontroller)
        mcu = config.board is not None
        bench_cfg = bench_config("quick", runtimes=("tflm",) if mcu else GROUPS["auto"], seconds=seconds,
                                 limit_test=limit_test)
        say(f"bench: {len(records)} files, " + ("top-1 under TFLite Micro" if mcu else
                                                f"{seconds:.0f} s of interleaved timing"))
        report, _ = bench(staging, bench_cfg, lambda m: say("  " + m), plot=plot and not mcu,
                          recommend_budget=None if mcu else config.accuracy_budget, devices=None if mcu else devices)
        result = _result(config, outcomes, records, report, time.monotonic() - started, out.root)
        if mcu:
            result["board"] = board_pick(staging, config, report, records)
            result["recommendation"] = result["board"]["recommendation"]
        write_json(staging / "optimize.json", result)
        from .report import markdown
        (staging / "optimize.md").write_text(markdown(result, run_name=run.root.name), encoding="utf-8")
    if devices is None:
        from edgesmith.benchmarks.lastbench import remember

        remember(out.root / run.bench.name / "results.json", out.root)  # the bench ran under the temporary name
    return result


def board_pick(run_dir: Path, config: OptimizeConfig, report: dict, records: list[dict]) -> dict:
    """The most accurate Cortex-M file that fits ``config.board`` (and ``config.max_latency_ms`` on the estimate).

    Accuracy is the bench's top-1 under TFLite Micro (the ``tflm`` cell), else the one export
    recorded; ties go to the smaller file. Fit and estimate are :func:`edgesmith.benchmarks.board_report.board_report`'s.

    Returns:
        ``{"board", "max_latency_ms", "rows": [board row + "top1", "top1_n", "eligible", "why_not"],
        "recommendation": {"artifact", "file", "top1", "sentence", "why", "export_command", ...} or {}}``.
    """
    from edgesmith.benchmarks.board_report import board_report

    by_name = {r["name"]: r for r in records}
    tflm = {a["artifact"]: a for a in report.get("accuracy") or [] if a["runtime"] == "tflm"}
    rows = []
    for row in board_report(run_dir, [config.board]):
        acc = tflm.get(row["artifact"])
        top1, n = (acc["top1"], acc["n_test"]) if acc else (row["tflm_top1"], row["tflm_n"])
        ms = row["latency"]["ms"]
        why_not = ("does not fit: " + ", ".join(
            f"{k} {row[f'{k}_need_kb']:.0f} KB > {row[f'{k}_kb']} KB" for k in ("ram", "flash")
            if not row[f"fits_{k}"]) if not row["fits"] else
            (f"no latency estimate ({row['latency']['basis']})" if ms is None else
             f"estimated {ms:g} ms > {config.max_latency_ms:g} ms") if config.max_latency_ms is not None
            and (ms is None or ms > config.max_latency_ms) else "")
        rows.append({**row, "top1": top1, "top1_n": n, "eligible": not why_not, "why_not": why_not})
    ok = sorted((r for r in rows if r["eligible"]), key=lambda r: (-r["top1"], r["model_bytes"]))
    rec = {}
    if ok:
        best = ok[0]
        est = best["latency"]["ms"]
        rec = {"artifact": best["artifact"], "file": by_name[best["artifact"]]["file"],
               "top1": best["top1"], "board": config.board, "latency_ms": est,
               "export_command": by_name[best["artifact"]]["export_command"],
               "sentence": f"Ship {by_name[best['artifact']]['file']} on {best['board_name']}: the most accurate "
                           f"Cortex-M file that fits ({best['top1']:.2%} under TFLite Micro on {best['top1_n']} "
                           "test images)",
               "why": f"RAM {best['ram_need_kb']:.0f} of {best['ram_kb']} KB, flash {best['flash_need_kb']:.0f} of "
                      f"{best['flash_kb']} KB; " + ("no latency estimate" if est is None else
                                                    f"ESTIMATED {est:g} ms ({best['latency']['basis']})")}
    return {"board": config.board, "max_latency_ms": config.max_latency_ms, "rows": rows, "recommendation": rec}


def _result(config: OptimizeConfig, outcomes: list[Outcome], records: list[dict], report: dict, wall: float,
            out_root: Path) -> dict:
    from edgesmith.benchmarks.advice import latency_rows, recommend
    from edgesmith.benchmarks.device_report import device_of
    from edgesmith.benchmarks.pareto import pareto_front

    by_name = {r["name"]: r for r in records}
    rows = latency_rows(report)
    front = set(pareto_front([(r["latency_ms"]["p50"], r["top1"]) for r in rows]))
    files = [{"device": device_of(r), "artifact": r["artifact"], "runtime": r["runtime"],
              "candidate": by_name[r["artifact"]]["candidate"], "threads": r["threads"], "top1": r["top1"],
              "p50_ms": r["latency_ms"]["p50"], "bytes": r["bytes"], "pareto": i in front,
              "export_command": by_name[r["artifact"]]["export_command"]}
             for i, r in enumerate(rows)]
    # the bench's rule (the one of bench --recommend), with the files named where they end up: OUT/artifacts/...
    rec = dict(report.get("recommendation") or {})
    if rec and "device" not in rec:  # (a --device bench chose per device; its files are named run-relative)
        rec = recommend(report, config.accuracy_budget, run_dir=out_root)
    if rec:
        rec["export_command"] = by_name[rec["artifact"]]["export_command"]
    tried = [{**o.to_dict(), "artifacts": [r["name"] for r in records if r["candidate"] == o.candidate.shown]}
             for o in outcomes]
    return {"created": now_iso(), "config": config.to_dict(), "budget_s": config.budget_s, "wall_s": round(wall, 1),
            "reference": report.get("reference"), "n_test": report["config"]["n_test"], "candidates": tried,
            "files": sorted(files, key=lambda f: f["p50_ms"]),
            "pareto": sorted((f for f in files if f["pareto"]), key=lambda f: f["p50_ms"]),
            "recommendation": rec, "environment": {k: report["environment"].get(k) for k in ("cpu", "isa", "arch")}}
