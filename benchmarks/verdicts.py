"""Verdicts: each quantized file against its float parent (speed-up, accuracy delta, size) in one line,
and what a whole bench measured in one plain sentence (:func:`measured_verdict`).

Built on :mod:`.advice` (the ISA cause of a slower int8 file, the recommendation); the reports
(:mod:`.report`, :mod:`.device_report`) and doctor read these.
"""
from __future__ import annotations

from pathlib import Path

from .advice import latency_rows, recommend, slower_cause
from .recommend import DEFAULT_BUDGET_PTS

# A quantized variant "wins" on a runtime when it is at least this much faster at batch 1 ...
WIN_SPEEDUP = 1.10
# ... and loses at most this many top-1 points.
WIN_MAX_DROP_PTS = 1.0


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def comparisons(results: list[dict], env: dict | None = None) -> list[dict]:
    """Each quantized result against its float parent at the same runtime and thread count.

    Pairs batch-1 rows for latency; the largest batch measured for both gives the throughput
    speed-up.

    Args:
        results: report rows (``artifact``, ``float_parent``, ``runtime``, ``threads``,
            ``batch``, ``top1``, ``latency_ms.p50``, ``throughput_ips``, ``bytes``).
        env: the environment (``isa``, ``arch``); when given, a slower int8 variant's
            verdict names the likely cause from the ISA.

    Returns:
        One dict per pair: ``accuracy_delta_pts`` (percentage points, negative = worse),
        ``speedup`` (float p50 / quantized p50 at batch 1, x; None without batch-1 rows),
        ``throughput_speedup`` (quantized img/s / float img/s at ``throughput_batch``),
        ``size_ratio`` (quantized bytes / float bytes) and a one-line ``verdict``.
    """
    index = {(r["artifact"], r["runtime"], r["threads"], r.get("batch", 1)): r for r in results}
    batches_of: dict[tuple, list[int]] = {}
    for r in results:
        batches_of.setdefault((r["artifact"], r["runtime"], r["threads"]), []).append(r.get("batch", 1))
    out = []
    for (name, runtime, threads), batches in batches_of.items():
        q = index[(name, runtime, threads, min(batches))]
        parent_name = q.get("float_parent")
        parent_batches = batches_of.get((parent_name, runtime, threads))
        if not parent_name or not parent_batches:
            continue
        common = sorted(set(batches) & set(parent_batches))
        if not common:
            continue
        q1, f1 = index[(name, runtime, threads, common[0])], index[(parent_name, runtime, threads, common[0])]
        delta = None if q1["top1"] is None or f1["top1"] is None else (q1["top1"] - f1["top1"]) * 100
        speedup = f1["latency_ms"]["p50"] / q1["latency_ms"]["p50"] if common[0] == 1 else None
        tb = common[-1] if common[-1] > 1 else None
        tput = None
        if tb is not None:
            qt, ft = index[(name, runtime, threads, tb)], index[(parent_name, runtime, threads, tb)]
            if qt.get("throughput_ips") and ft.get("throughput_ips"):
                tput = qt["throughput_ips"] / ft["throughput_ips"]
        ratio = q1["bytes"] / f1["bytes"]
        out.append({"quantized": name, "float": parent_name, "precision": q1.get("precision"), "runtime": runtime,
                    "threads": threads, "accuracy_delta_pts": None if delta is None else round(delta, 2),
                    "speedup": round(speedup, 3) if speedup else None,
                    "throughput_batch": tb, "throughput_speedup": round(tput, 3) if tput else None,
                    "size_ratio": round(ratio, 3),
                    "verdict": _verdict(q1, runtime, threads, delta=delta, speedup=speedup, tput=tput, tb=tb,
                                        ratio=ratio, env=env)})
    return out


def _pace(x: float) -> str:
    return f"{x:.2f}x faster" if x >= 1 else f"{1 / x:.2f}x slower"


def _verdict(q: dict, runtime: str, threads: int, *, delta: float | None, speedup: float | None,
             tput: float | None, tb: int | None, ratio: float, env: dict | None = None) -> str:
    main = speedup if speedup is not None else tput
    acc = "(accuracy not measured) at" if delta is None else f"at {delta:+.2f} pt and"
    parts = [f"{q.get('precision') or q['artifact']} is {_pace(main)}" if main else q["artifact"],
             f"{acc} {ratio:.0%} of the size on {runtime} ({plural(threads, 'thread')})"]
    delta = 0.0 if delta is None else delta
    if speedup is not None and tput is not None:
        parts.insert(1, f"(batch {tb}: {_pace(tput)})")
    if main is None:
        call = ""
    elif main >= WIN_SPEEDUP and round(delta, 2) >= -WIN_MAX_DROP_PTS:
        call = ": ship it"
    elif main < 1 / WIN_SPEEDUP:
        call = ": slower here, keep the float model unless size matters"
        if env is not None and q.get("precision") in ("int8", "dynamic"):
            call += f" ({slower_cause(env.get('isa') or (), env.get('arch'), runtime, q['artifact'])})"
    elif round(delta, 2) < -WIN_MAX_DROP_PTS:
        call = ": too much accuracy lost"
    else:
        call = ": no real speed difference, smaller file"
    return " ".join(parts) + call


def measured_verdict(report: dict, run_dir: str | Path | None = None, budget_pts: float = DEFAULT_BUDGET_PTS,
                     here_cpu: str | None = None) -> dict:
    """What a bench measured, in one plain sentence: int8 against float and the file to ship.

    Args:
        report: a bench report (``results.json``).
        run_dir: the run it measured, so the file is named by its path.
        budget_pts: accuracy budget of the recommendation (top-1 points).
        here_cpu: this machine's CPU name; when the report's differs, the sentence says where it
            was measured instead of "this CPU".

    Returns:
        ``sentence`` (plain), ``why`` (the technical line), ``speedup`` (best int8 vs its float
        parent at batch 1 and the fewest threads, x; None when not measured), ``recommendation``
        (:func:`recommend`'s dict), ``measured_on`` (CPU name), ``created``; ``{}`` without rows.
    """
    rec = recommend(report, budget_pts, run_dir=run_dir)
    if not rec:
        return {}
    env = report.get("environment") or {}
    rows = latency_rows(report)
    threads = rows[0]["threads"]
    pairs = [c for c in report.get("comparisons") or [] if c.get("threads") == threads and c.get("speedup")
             and c.get("precision") == "int8"]
    if not pairs:
        pairs = [c for c in comparisons(rows, env) if c.get("speedup") and c.get("precision") == "int8"]
    best = max(pairs, key=lambda c: c["speedup"]) if pairs else None
    where = "this CPU" if not here_cpu or env.get("cpu") in (None, here_cpu) else env.get("cpu")
    if best is None:
        pace = "no int8 file was measured against its float parent"
    elif best["speedup"] >= 1.1:
        pace = f"int8 runs about {best['speedup']:.1f}x faster than float on {where}"
    elif best["speedup"] > 1 / 1.1:
        pace = f"int8 runs about as fast as float on {where} ({best['speedup']:.2f}x)"
    else:
        pace = f"int8 runs about {1 / best['speedup']:.1f}x slower than float on {where}"
    what = f" ({rec['precision']}: {'as fast within noise, and smaller' if rec.get('ties') else 'fastest here'})" \
        if rec.get("precision") not in (None, "int8") else ""
    return {"sentence": f"{pace}; ship {rec['file']}{what}", "why": rec["why"], "tie_note": rec.get("tie_note", ""),
            "speedup": best["speedup"] if best else None, "recommendation": rec,
            "measured_on": env.get("cpu"), "created": report.get("created")}
