"""Print docs/mcu.md's leave-one-out table: each published MLPerf Tiny row predicted from the others.

The table in docs/mcu.md is this script's output, and ``tests/benchmarks/test_boards.py`` checks
they agree, so the figures in the docs are the estimator's, not a hand copy.

Usage::

    python tools/mcu_loo_table.py
"""
from __future__ import annotations

from edgesmith.benchmarks.mcu_estimate import BAND, leave_one_out
from edgesmith.benchmarks.boards import load_boards


def table() -> str:
    """The markdown table, one line per published row, then a one-line count."""
    data = load_boards()
    rows = leave_one_out(data)
    lines = ["| board | core @ MHz | engine | published ms | predicted ms | error | other rows (core / engine) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        pred = "-" if r["predicted_ms"] is None else f"{r['predicted_ms']:,.1f}"
        if r["error"] is None:
            err = "cannot be checked"
        else:
            err = f"{r['error']:+.0%}" + ("" if abs(r["error"]) <= BAND else " **miss**")
        lines.append(f"| {r['board']} | {r['core'].removeprefix('cortex-')} @ {r['clock_mhz']} | {r['runtime']} | "
                     f"{r['latency_ms']:,.2f} | {pred} | {err} | {r['n_core']} / {r['n_runtime']} |")
    checked = [r for r in rows if r["error"] is not None]
    within = sum(abs(r["error"]) <= BAND for r in checked)
    lines.append("")
    lines.append(f"{within} of {len(checked)} checkable rows within ±{BAND:.0%}; "
                 f"{len(rows) - len(checked)} of {len(rows)} rows cannot be checked.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
