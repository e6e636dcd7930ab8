"""The one decision rule for "which file do I ship here": ``bench --recommend``, ``optimize`` and ``doctor``.

Rule (:func:`recommend`), over the batch-1 rows at the fewest threads measured (one core: the
usual edge deployment):

1. keep the rows within the accuracy budget of float top-1 (none: the smallest file wins);
2. the fastest p50 among them is the leader;
3. every kept row whose p50 is within the leader's noise band (:func:`.stats.p50_noise_ms`)
   and whose top-1 is within the accuracy noise (:func:`.stats.two_proportion_ci95_pts`) of
   the leader's **ties** with it;
4. among the tied rows the smaller file wins, then the simpler one (TFLite before ONNX, then
   the name with fewer options: ``model_int8.onnx`` before ``model_int8_entropy.onnx``), then
   the faster one; the tie is said in one line.

No TensorFlow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .stats import p50_noise_ms, two_proportion_ci95_pts

DEFAULT_BUDGET_PTS = 0.5


@dataclass(frozen=True)
class Recommendation:
    """The file to ship on this machine, and why.

    Attributes:
        artifact: artifact name in the manifest (``onnx_int8``).
        file: the file, relative to the run (``artifacts/model_int8.onnx``), or the path
            ``RUN/artifacts/...`` when the run directory was given.
        runtime, threads: where it was measured (bench runtime, intra-op threads).
        top1: its top-1 (0-1) here, None when only latency was measured; ``p50_ms``: batch-1
            median latency, ms; ``bytes``: file size.
        float_top1: the float reference top-1 the budget is taken from (0-1), None without accuracy.
        rule: ``fastest within budget``, ``fastest (latency only)`` or ``smallest (none within budget)``.
        budget_pts: accuracy budget, top-1 points.
        precision: the file's precision (``int8``, ``dynamic``, ``fp16``, ``fp32``).
        speedup: the float parent's p50 / this p50 on the same runtime (x), None without one.
        ties: the other rows that tie with it within noise (``file``, ``p50_ms``, ``top1``, ``bytes``).
        tie_note: one line saying the tie and how it was broken ("" without a tie).
        sentence: one plain sentence for people (what to ship, how much faster than float).
        why: the technical line (p50, threads, top-1 vs float and budget, size, rule).
    """

    artifact: str
    file: str
    runtime: str
    threads: int
    top1: float | None
    p50_ms: float
    bytes: int
    float_top1: float | None
    budget_pts: float
    rule: str
    precision: str | None = None
    speedup: float | None = None
    ties: list[dict] = field(default_factory=list)
    tie_note: str = ""
    sentence: str = ""
    why: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _name(row: dict) -> str:
    return Path(row.get("file") or row["artifact"]).name


def _simplicity(row: dict) -> tuple:
    """Smaller is simpler: TFLite before ONNX, then fewer options in the name."""
    name = _name(row)
    return (0 if name.endswith(".tflite") or row.get("format") == "tflite" else 1, name.count("_"), name)


def _acc_noise_pts(a: dict, b: dict) -> float:
    n_a, n_b = a.get("n_test") or 0, b.get("n_test") or 0
    if not n_a or not n_b or a.get("top1") is None or b.get("top1") is None:
        return 0.0
    return two_proportion_ci95_pts(a["top1"], n_a, b["top1"], n_b)


def ties_with(leader: dict, row: dict) -> bool:
    """Whether ``row`` is indistinguishable from ``leader``: p50 within the noise band and top-1 within its CI."""
    if row is leader:
        return True
    lat_l, lat_r = leader["latency_ms"], row["latency_ms"]
    if abs(lat_r["p50"] - lat_l["p50"]) > p50_noise_ms(lat_l, lat_r) + 1e-12:
        return False
    if leader.get("top1") is None or row.get("top1") is None:
        return leader.get("top1") is None and row.get("top1") is None
    return abs(row["top1"] - leader["top1"]) * 100 <= _acc_noise_pts(leader, row) + 1e-9


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _float_parent_row(best: dict, rows: list[dict]) -> dict | None:
    parent = best.get("float_parent")
    same = [r for r in rows if r["runtime"] == best["runtime"] and r["threads"] == best["threads"]]
    for r in same:
        if parent and r["artifact"] == parent:
            return r
    floats = [r for r in same if r.get("precision") == "fp32"]
    return min(floats, key=lambda r: r["latency_ms"]["p50"]) if floats else None


def recommend(rows: list[dict], float_top1: float | None, budget_pts: float = DEFAULT_BUDGET_PTS, *,
              run_dir: str | Path | None = None) -> Recommendation | None:
    """Pick the file to ship from batch-1 bench rows measured at one thread count.

    Example::

        rec = recommend(latency_rows(report), float_top1=0.654, budget_pts=0.5, run_dir="runs/demo")
        print(rec.sentence)   # ship runs/demo/artifacts/model_int8.tflite: int8 runs about 3.0x faster ...
        print(rec.tie_note)   # model_int8.onnx and model_int8_entropy.onnx tie within noise (...); picked ...

    Args:
        rows: bench result rows (``artifact``, ``file``, ``format``, ``precision``,
            ``float_parent``, ``runtime``, ``threads``, ``top1`` (0-1 or None when only latency
            was measured), ``n_test``, ``latency_ms`` (``p50`` and, for the noise band, ``p25``,
            ``p75``, ``n``), ``bytes``).
        float_top1: the float reference top-1 (0-1); None: no accuracy known (latency only:
            every row is within budget).
        budget_pts: accuracy budget in top-1 points (>= 0).
        run_dir: the run directory, so ``file`` names the path (``RUN/artifacts/model_int8.onnx``).

    Returns:
        The :class:`Recommendation`, or None without rows.

    Raises:
        ValueError: a negative budget.
    """
    if budget_pts < 0:
        raise ValueError(f"budget_pts must be >= 0 points, got {budget_pts}")
    if not rows:
        return None
    no_acc = float_top1 is None or any(r.get("top1") is None for r in rows)
    if no_acc:
        within = list(rows)
    else:
        within = [r for r in rows if (float_top1 - r["top1"]) * 100 <= budget_pts + 1e-9]
    if within:
        leader = min(within, key=lambda r: (r["latency_ms"]["p50"], r["bytes"], _simplicity(r)))
        tied = [r for r in within if ties_with(leader, r)]
        best = min(tied, key=lambda r: (r["bytes"], _simplicity(r), r["latency_ms"]["p50"]))
        rule = "fastest within budget" if not no_acc else "fastest (latency only)"
    else:
        tied = []
        best = min(rows, key=lambda r: (r["bytes"], r["latency_ms"]["p50"], _simplicity(r)))
        rule = "smallest (none within budget)"
    others = [r for r in tied if r is not best]
    where = (lambda r: str(Path(run_dir) / r["file"])) if run_dir is not None and best.get("file") else \
        (lambda r: r.get("file") or r["artifact"])
    tie_note = ""
    if others:
        names = [_name(best)] + [_name(r) for r in others]
        lat = " vs ".join(f"{r['latency_ms']['p50']:.3f}" for r in [best, *others])
        accs = [r.get("top1") for r in [best, *others]]
        acc = "" if accs[0] is None else (f", {_pct(accs[0])} {'both' if len(accs) == 2 else 'all'}"
                                          if len(set(accs)) == 1 else ", " + " vs ".join(_pct(a) for a in accs))
        how = "smaller" if all(best["bytes"] < r["bytes"] for r in others) else "simpler"
        tie_note = (f"{' and '.join(names) if len(names) == 2 else ', '.join(names)} tie within noise "
                    f"({lat} ms{acc}); picked the {how}")
    parent = _float_parent_row(best, rows)
    speedup = None
    if parent is not None and parent is not best:
        speedup = parent["latency_ms"]["p50"] / best["latency_ms"]["p50"]
    threads = best["threads"]
    ref = float_top1 if float_top1 is not None else None
    kind = best.get("precision") or "this file"
    if speedup is None:
        pace = f"{best['latency_ms']['p50']:.3f} ms per image"
    elif speedup >= 1:
        pace = f"{kind} runs about {speedup:.1f}x faster than float"
    else:
        pace = f"{kind} runs about {1 / speedup:.1f}x slower than float (but it is smaller)"
    sentence = f"ship {where(best)}: {pace} on this machine ({best['runtime']}, {threads} thread{'s' * (threads != 1)})"
    if best.get("top1") is not None and ref is not None:
        sentence += f", top-1 {_pct(best['top1'])} vs float {_pct(ref)}"
    acc = (f"top-1 {_pct(best['top1'])} vs float {_pct(ref)} ({(best['top1'] - ref) * 100:+.2f} pt, "
           f"budget {budget_pts:g} pt)" if best.get("top1") is not None and ref is not None else "no accuracy measured")
    why = (f"{best['artifact']} on {best['runtime']}: p50 {best['latency_ms']['p50']:.3f} ms at {threads} "
           f"thread{'s' * (threads != 1)}, {acc}, {best['bytes'] / 1024:.1f} KiB: {rule}")
    return Recommendation(artifact=best["artifact"], file=where(best), runtime=best["runtime"], threads=threads,
                          top1=best.get("top1"), p50_ms=best["latency_ms"]["p50"], bytes=best["bytes"],
                          float_top1=ref, budget_pts=budget_pts, rule=rule, precision=best.get("precision"),
                          speedup=round(speedup, 3) if speedup else None,
                          ties=[{"file": where(r), "artifact": r["artifact"], "p50_ms": r["latency_ms"]["p50"],
                                 "top1": r.get("top1"), "bytes": r["bytes"]} for r in others],
                          tie_note=tie_note, sentence=sentence, why=why)
