"""Benchmark reports: results.json, results.csv and report.md, with float -> int8 deltas."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from edgesmith.core.fsutil import write_json, write_text

CSV_FIELDS = ("artifact", "format", "precision", "target", "threads", "batch", "top1", "n_test",
              "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "load_ms", "bytes", "gzip_bytes")


def comparisons(results: list[dict]) -> list[dict]:
    """Each quantized result against its float parent at the same target and threads.

    Returns:
        One dict per pair: ``accuracy_delta_pts`` (percentage points, negative = worse),
        ``speedup`` (float p50 / quantized p50, x), ``size_ratio`` (quantized bytes /
        float bytes) and a one-line ``verdict``.
    """
    index = {(r["artifact"], r["target"], r["threads"]): r for r in results}
    out = []
    for r in results:
        parent = index.get((r.get("float_parent"), r["target"], r["threads"]))
        if parent is None:
            continue
        delta = (r["top1"] - parent["top1"]) * 100
        speedup = parent["latency_ms"]["p50"] / r["latency_ms"]["p50"]
        ratio = r["bytes"] / parent["bytes"]
        pace = f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"
        verdict = (f"{r['precision']} is {pace} at {delta:+.1f} pt and {ratio:.0%} of the size "
                   f"on {r['target']} ({r['threads']} thread{'s' if r['threads'] > 1 else ''})")
        out.append({"quantized": r["artifact"], "float": parent["artifact"], "target": r["target"],
                    "threads": r["threads"], "accuracy_delta_pts": round(delta, 2),
                    "speedup": round(speedup, 3), "size_ratio": round(ratio, 3), "verdict": verdict})
    return out


def _csv_row(r: dict) -> dict:
    lat = r["latency_ms"]
    return {**{k: r.get(k) for k in CSV_FIELDS}, "p50_ms": lat["p50"], "p90_ms": lat["p90"],
            "p99_ms": lat["p99"], "mean_ms": lat["mean"], "std_ms": lat["std"]}


def markdown(report: dict) -> str:
    """The report as Markdown: environment, one results table, then float -> int8 verdicts."""
    env, cfg = report["environment"], report["config"]
    lines = [f"# Benchmark: {report['run']}", "",
             f"{env['cpu']}, {env['cores']} cores, {env['os']}. Batch-1 latency over "
             f"{cfg['runs']} runs after {cfg['warmup']} warm-up runs, inference only "
             f"(images decoded beforehand); top-1 on {cfg['n_test']} test images.", ""]
    ref = report.get("reference") or {}
    if ref.get("top1") is not None:
        lines += [f"Keras float32 reference: top-1 {ref['top1']:.2%} on {ref['n_test']} test images.", ""]
    lines += ["| artifact | target | threads | top-1 | p50 ms | p90 ms | p99 ms | mean ± std ms | size KiB | gzip KiB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        lat = r["latency_ms"]
        lines.append(f"| {r['artifact']} | {r['target']} | {r['threads']} | {r['top1']:.2%} | "
                     f"{lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | "
                     f"{lat['mean']:.3f} ± {lat['std']:.3f} | {r['bytes'] / 1024:.1f} | "
                     f"{r['gzip_bytes'] / 1024:.1f} |")
    comps = report.get("comparisons") or []
    if comps:
        lines += ["", "| quantized vs float | target | threads | Δ top-1 (pt) | speed-up | size ratio |",
                  "|---|---|---:|---:|---:|---:|"]
        for c in comps:
            lines.append(f"| {c['quantized']} vs {c['float']} | {c['target']} | {c['threads']} | "
                         f"{c['accuracy_delta_pts']:+.2f} | {c['speedup']:.2f}× | {c['size_ratio']:.2f} |")
        lines += [""] + [f"- {c['verdict']}" for c in comps]
    return "\n".join(lines) + "\n"


def write_reports(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv`` and ``report.md`` into ``out_dir`` (atomically).

    Adds ``comparisons`` to ``report`` if absent. Returns the paths written by kind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.setdefault("comparisons", comparisons(report["results"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in report["results"]:
        w.writerow(_csv_row(r))
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv", "md": out_dir / "report.md"}
    write_json(paths["json"], report)
    write_text(paths["csv"], buf.getvalue())
    write_text(paths["md"], markdown(report))
    return paths
