"""Accuracy vs latency: the Pareto front and its plot.

matplotlib is the ``[plots]`` extra and is imported only when plotting: a device bench writes
its JSON, CSV and Markdown without it, and the plot is drawn wherever matplotlib is.
"""
from __future__ import annotations

from pathlib import Path

from edgesmith.core.cpuinfo import machine_stamp
from edgesmith.core.errors import BackendUnavailable
from edgesmith.core.fsutil import atomic_path

from .schema import device_of

PLOTS_HINT = "pip install 'edgesmith[plots]'"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes.

    Args:
        points: ``(latency_ms, accuracy)`` pairs; lower latency and higher accuracy are better.

    Returns:
        Indices of the non-dominated points, fastest first. A point is dominated when
        another is at least as fast and as accurate and strictly better on one of them.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_acc = [], float("-inf")
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front


def plot_pareto(report: dict, path: str | Path) -> Path:
    """Draw top-1 vs batch-1 p50 latency for every measured row, marker area by file size.

    Colour is the runtime; with several devices the marker shape is the device and each label
    names it. Points on the Pareto front (over all devices) are outlined and joined by a step
    line. The title names the machine (``environment.cpu``; with several devices, their names)
    and the date (``created``) of the report. Written atomically.

    Args:
        report: a benchmark report of the current schema (the suite's, or a ``results.json`` read
            through :func:`.compare.load_results`); rows with ``batch`` 1 are plotted.
        path: the PNG to write.

    Returns:
        ``path``.

    Raises:
        BackendUnavailable: matplotlib is not installed (the message names the extra to install).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise BackendUnavailable(f"drawing {Path(path).name} needs matplotlib: {PLOTS_HINT}") from None

    rows = [r for r in report["results"] if r.get("batch", 1) == 1]
    pts = [(r["latency_ms"]["p50"], r["top1"] * 100) for r in rows]
    front = pareto_front(pts)
    biggest = max(r["bytes"] for r in rows)
    fig = Figure(figsize=(8, 5.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    runtimes = sorted({r["runtime"] for r in rows})
    colors = {t: f"C{i}" for i, t in enumerate(runtimes)}
    devices = list(dict.fromkeys(device_of(r) for r in rows))
    markers = {d: "os^DvP*X"[i % 8] for i, d in enumerate(devices)}
    at = (lambda r: f" @ {device_of(r)}") if len(devices) > 1 else (lambda r: "")
    seen: dict[float, int] = {}
    for i, (r, (x, y)) in enumerate(zip(rows, pts)):
        j = seen[round(y, 2)] = seen.get(round(y, 2), -1) + 1  # rank among points of equal accuracy
        on = i in front
        ax.scatter(x, y, s=40 + 600 * r["bytes"] / biggest, color=colors[r["runtime"]], alpha=0.6,
                   marker=markers[device_of(r)],
                   edgecolors="black" if on else "none", linewidths=1.5 if on else 0)
        # stagger labels so near-identical points (same model, other thread count) stay readable
        ax.annotate(f"{r['artifact']} t{r['threads']}{at(r)}", (x, y), textcoords="offset points",
                    xytext=(7, (10, -14, 22, -26, 34, -38, 46, -50)[j % 8]), fontsize=7)
    fx, fy = zip(*(pts[i] for i in front))
    ax.step(fx, fy, where="post", color="black", linewidth=1, linestyle="--")
    handles = [Line2D([], [], marker="o", linestyle="", color=colors[t], alpha=0.6, label=t) for t in runtimes]
    if len(devices) > 1:
        handles += [Line2D([], [], marker=markers[d], linestyle="", color="gray", label=d) for d in devices]
    handles.append(Line2D([], [], marker="o", linestyle="--", color="black", markerfacecolor="none",
                          label="Pareto front"))
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.25)
    ax.set_xlabel("batch-1 latency p50 (ms, log scale)")
    ax.set_ylabel("top-1 (%)")
    # the machine (several devices: their names) and the date the figures were measured
    where = (report.get("environment") or {}).get("cpu") if len(devices) == 1 else ", ".join(map(str, devices))
    ax.set_title(f"{report['run']}: accuracy vs latency (marker area ~ file size)\n"
                 f"{machine_stamp(where, report.get('created'))}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
