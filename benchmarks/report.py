"""Benchmark reports: results.json, results.csv, report.md, and with matplotlib pareto.png and one
confusion-<artifact>.png per artifact.

report.md holds one results table, then for every quantized variant its change against its
float parent on each runtime (accuracy delta in points, speed-up x, size ratio) with a
one-line verdict (naming the ISA cause when int8 is slower, :func:`.advice.slower_cause`),
the artifacts whose top-1 here differs from their export-time top-1 (:func:`.advice.divergences`),
the recommended artifact when asked (:func:`.advice.recommend`), per-class accuracy (recall) of
every artifact x runtime and each artifact's confusion matrix (:mod:`edgesmith.core.perclass`), and
the runtimes that were skipped and why.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from edgesmith.core.cpuinfo import machine_stamp
from edgesmith.core.errors import BackendUnavailable
from edgesmith.core.fsutil import write_json, write_text

from .device_report import select_device
from .pareto import PLOTS_HINT, plot_pareto
from .schema import LOCAL, device_names, device_of
from .verdicts import WIN_MAX_DROP_PTS, WIN_SPEEDUP, comparisons, plural  # noqa: F401  (comparisons re-exported)

CSV_FIELDS = ("device", "artifact", "format", "precision", "runtime", "threads", "batch", "top1", "n_test",
              "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput_ips", "load_ms",
              "rss_peak_mib", "rss_model_mib", "bytes", "gzip_bytes")
def _csv_row(r: dict) -> dict:
    lat = r["latency_ms"]
    return {**{k: r.get(k) for k in CSV_FIELDS}, "device": device_of(r),
            "p50_ms": round(lat["p50"], 4), "p90_ms": round(lat["p90"], 4),
            "p99_ms": round(lat["p99"], 4), "mean_ms": round(lat["mean"], 4), "std_ms": round(lat["std"], 4)}


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def markdown(report: dict, notes: tuple[str, ...] = ()) -> str:
    """The report as Markdown: environment and method, one results table, float -> quantized
    comparisons with verdicts, per-class accuracy, skipped runtimes, then ``notes`` (one
    bullet each, e.g. why there is no plot)."""
    env, cfg = report["environment"], report["config"]
    gpus = ", ".join(g["name"] for g in env.get("gpus") or []) or "no GPU"
    lines = [f"# Benchmark: {report['run']}", "",
             f"{env['cpu']} ({', '.join(env.get('isa') or []) or 'ISA flags unknown'}), {env['cores']} cores, "
             f"{gpus}, load average {env.get('load_avg_start', env.get('load_avg'))} at start and "
             f"{env.get('load_avg')} at end; {env['os']}, Python {env.get('python')}; "
             + ("latency only: generated inputs, no accuracy measured" if cfg.get("latency_only") else
              f"top-1 on {cfg['n_test']} test images") + f"; bench wall time {report.get('wall_s')} s.", "",
             cfg.get("method", ""), ""]
    busy = max(x for x in (env.get("load_avg_start"), env.get("load_avg"), 0) if x is not None)
    if busy > env["cores"]:
        lines += [f"**Shared machine:** load average reached {busy:g} on {env['cores']} cores while measuring; "
                  "latency (multi-thread rows most) includes waiting for a core. Compare runs taken under "
                  "similar load only.", ""]
    ref = report.get("reference") or {}
    if ref.get("top1") is not None:
        lines += [f"Keras float32 reference (from training): top-1 {ref['top1']:.2%} on {ref['n_test']} test images.", ""]
    lines += ["| artifact | runtime | threads | batch | top-1 | p50 ms | p90 ms | p99 ms | mean ± std ms | img/s "
              "| load ms | peak RSS MiB (model) | size KiB | gzip KiB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        lat = r["latency_ms"]
        lines.append(f"| {r['artifact']} | {r['runtime']} | {r['threads']} | {r.get('batch', 1)} | {_fmt(r['top1'], '.2%')} | "
                     f"{lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {lat['mean']:.3f} ± {lat['std']:.3f} | "
                     f"{_fmt(r.get('throughput_ips'), ',.0f')} | {_fmt(r.get('load_ms'), '.1f')} | "
                     f"{_fmt(r.get('rss_peak_mib'), '.0f')} ({_fmt(r.get('rss_model_mib'), '.1f')}) | "
                     f"{r['bytes'] / 1024:.1f} | {r['gzip_bytes'] / 1024:.1f} |")
    host_only = [a for a in report.get("accuracy") or [] if a.get("note")]
    if host_only:  # e.g. TFLite Micro on this host: its x86 time is no microcontroller's time, so none is shown
        lines += ["", "## Accuracy only (no latency: host, not device)", "", "| artifact | runtime | top-1 | images |",
                  "|---|---|---:|---:|"]
        lines += [f"| {a['artifact']} | {a['runtime']} | {a['top1']:.2%} | {a['n_test']} |" for a in host_only]
        lines += ["", host_only[0]["note"] + "; `bench --board` estimates the time on a board."]
    comps = report.get("comparisons") or []
    if comps:
        lines += ["", "## Quantized vs float parent", "",
                  "| quantized vs float | runtime | threads | Δ top-1 (pt) | speed-up batch 1 | speed-up throughput "
                  "| size ratio |", "|---|---|---:|---:|---:|---:|---:|"]
        for c in comps:
            tput = f"{c['throughput_speedup']:.2f}× (batch {c['throughput_batch']})" if c.get("throughput_speedup") else "-"
            lines.append(f"| {c['quantized']} vs {c['float']} | {c['runtime']} | {c['threads']} | "
                         f"{_fmt(c['accuracy_delta_pts'], '+.2f')} | {_fmt(c.get('speedup'), '.2f')}× | {tput} | "
                         f"{c['size_ratio']:.2f} |")
        lines += [""] + [f"- {c['quantized']}: {c['verdict']}" for c in comps]
    lines += per_class_lines(report)
    lines += _advice_lines(report)
    if report.get("skipped"):
        lines += ["", "## Skipped", ""]
        lines += [f"- {s['runtime']}" + (f" ({s['artifact']})" if s.get("artifact") else "") + f": {s['reason']}"
                  for s in report["skipped"]]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def confusions(report: dict) -> dict[str, dict]:
    """One confusion matrix per artifact: artifact -> ``{"runtime", "confusion", "same_on"}``.

    The matrix is the first runtime's that measured the artifact's accuracy (``confusion``: K lists of
    K counts, row = true class); ``same_on`` lists the other runtimes whose predictions gave the same
    matrix (a runtime that differs gets its own row in the per-class table, not its own matrix).
    """
    out: dict[str, dict] = {}
    for a in report.get("accuracy") or []:
        cm = a.get("confusion")
        if cm is None:
            continue
        if a["artifact"] not in out:
            out[a["artifact"]] = {"runtime": a["runtime"], "confusion": cm, "same_on": []}
        elif out[a["artifact"]]["confusion"] == cm:
            out[a["artifact"]]["same_on"].append(a["runtime"])
    return out


def per_class_lines(report: dict) -> list[str]:
    """report.md's "Per-class accuracy" section: recall per class (and balanced accuracy) for every
    artifact x runtime, then each artifact's confusion matrix (empty without accuracy entries)."""
    from edgesmith.core.perclass import confusion_markdown, per_class_summary

    acc, names = report.get("accuracy") or [], report.get("class_names")
    if not acc or not names:
        return []
    lines = ["", "## Per-class top-1 (recall)", "",
             "Share of each class's test images predicted as that class; balanced = the mean over classes.", "",
             "| artifact | runtime | balanced | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    for a in acc:
        known = [v for v in a["per_class"].values() if v is not None]
        balanced = sum(known) / len(known) if known else None
        lines.append(f"| {a['artifact']} | {a['runtime']} | {_fmt(balanced, '.1%')} | "
                     + " | ".join(_fmt(a["per_class"].get(n), ".1%") for n in names) + " |")
    for name, c in confusions(report).items():
        worst = per_class_summary(c["confusion"], names, top_confusions=3)["most_confused"]
        on = ", ".join([c["runtime"], *c["same_on"]])
        lines += ["", f"### Confusion matrix: {name} ({on}; row: true class, column: predicted)", "",
                  *confusion_markdown(c["confusion"], names)]
        if worst:
            lines += ["", "Most confused: " + "; ".join(f"{w['true']} -> {w['predicted']} ({w['count']})"
                                                         for w in worst) + "."]
    return lines


def _advice_lines(report: dict) -> list[str]:
    """report.md's "Accuracy here vs at export" and "Recommended" sections (empty when there is nothing to say)."""
    lines = []
    verify = report.get("verify_accuracy") or []
    if verify:
        flagged = report.get("divergences") or []
        lines += ["", "## Accuracy here vs at export", "",
                  f"Top-1 on the first {verify[0]['n']} test images (those export verified on): "
                  + (f"{plural(len(flagged), 'artifact')} differ by more than 0.3 pt." if flagged
                     else f"all {len(verify)} artifact x runtime pairs within 0.3 pt of export.")]
        if flagged:
            lines += ["", "| artifact | runtime | top-1 here | at export | Δ pt | likely cause |",
                      "|---|---|---:|---:|---:|---|"]
            lines += [f"| {d['artifact']} | {d['runtime']} | {d['top1']:.2%} | {d['export_top1']:.2%} | "
                      f"{d['delta_pts']:+.2f} | {d['cause']} |" for d in flagged]
    rec = report.get("recommendation")
    if rec:
        lines += ["", "## Recommended for this machine", "", rec.get("sentence") or f"**{rec['artifact']}**", "",
                  f"Why: {rec['why']}."] + (["", f"{rec['tie_note']}."] if rec.get("tie_note") else [])
    return lines


def write_reports(report: dict, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``report.md`` and ``pareto.png`` into ``out_dir``.

    Every file is written atomically. Adds ``comparisons`` to ``report`` if absent. Without
    matplotlib (the ``[plots]`` extra) ``pareto.png`` is skipped and ``report.md`` says how to
    get it; draw it later where matplotlib is, from ``results.json`` with
    :func:`.pareto.plot_pareto`.

    Args:
        report: what :func:`.suite.bench_run` returned.
        out_dir: folder, created if missing.
        plot: also draw ``pareto.png`` (when there are batch-1 rows).

    Returns:
        The paths written, by kind (``json``, ``csv``, ``md``, and ``png`` when drawn).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.setdefault("comparisons", comparisons(report["results"], report.get("environment")))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in report["results"]:
        w.writerow(_csv_row(r))
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv", "md": out_dir / "report.md"}
    notes: tuple[str, ...] = ()
    if plot and any(r.get("batch", 1) == 1 and r.get("top1") is not None for r in report["results"]):
        try:
            paths["png"] = plot_pareto(report, out_dir / "pareto.png")
        except BackendUnavailable:
            notes = (f"No pareto.png: matplotlib is not installed here (`{PLOTS_HINT}`); the plot can be drawn "
                     "from results.json wherever it is, with `edgesmith.benchmarks.pareto.plot_pareto`.",)
    if plot and report.get("class_names"):
        from edgesmith.core.perclass import plot_confusion

        for name, c in confusions(report).items():
            try:
                paths[f"confusion-{name}"] = plot_confusion(c["confusion"], report["class_names"],
                                                            out_dir / f"confusion-{name}.png",
                                                            title=f"{name} ({c['runtime']})",
                                                            machine=machine_stamp(
                                                                (report.get("environment") or {}).get("cpu"),
                                                                report.get("created")))
            except BackendUnavailable:
                notes += (f"No confusion-*.png: matplotlib is not installed here (`{PLOTS_HINT}`); report.md and "
                          "results.json hold the numbers.",)
                break
    write_json(paths["json"], report)
    write_text(paths["csv"], buf.getvalue())
    write_text(paths["md"], (device_markdown if needs_device_markdown(report) else markdown)(report, notes))
    return paths


# --- several devices in one report (see :mod:`.device_report` for how they are merged) ---

def needs_device_markdown(report: dict) -> bool:
    """Whether report.md should be the several-devices layout (more than one device, or a remote one)."""
    devices = report.get("devices") or []
    return len(devices) > 1 or any(d.get("kind") != LOCAL or not d.get("ok", True) for d in devices)


def _temps(env: dict) -> str:
    end, start = env.get("temperatures_c") or {}, env.get("temperatures_c_start") or {}
    if not end:
        return "-"
    return (f"{max(start.values()):.0f} → " if start else "") + f"{max(end.values()):.0f}"


def _device_row(d: dict) -> str:
    env = d.get("environment") or {}
    v = env.get("versions") or {}
    status = "ok" if d.get("ok") else f"**{d.get('state') or 'failed'}**"
    isa = ", ".join(env.get("isa") or []) or "-"
    return (f"| {d['name']} | {status} | {env.get('cpu', '-')} ({env.get('arch', '?')}) | {env.get('cores', '-')} | "
            f"{isa} | {env.get('os', '-')} | {env.get('python', '-')} | {v.get('edgesmith', '-')} | "
            f"{v.get('ai-edge-litert', '-')} | {v.get('onnxruntime', '-')} | {env.get('governor') or '-'} | "
            f"{_temps(env)} | {env.get('load_avg', '-')} | {_window(d)} |")


def _window(d: dict) -> str:
    """When the device was measured: ``start → end`` in s from the bench's start."""
    if d.get("started_s") is None or d.get("wall_s") is None:
        return "-"
    return f"{d['started_s']:.0f} → {d['started_s'] + d['wall_s']:.0f}"


def _side_by_side(report: dict, names: list[str]) -> list[str]:
    rows: dict[tuple, dict[str, dict]] = {}
    for r in report["results"]:
        rows.setdefault((r["artifact"], r["runtime"], r["threads"], r.get("batch", 1)), {})[device_of(r)] = r
    head = "| artifact | runtime | threads | batch | top-1 | " + " | ".join(names) + " |"
    out = [head, "|---|---|---:|---:|---:|" + "---:|" * len(names)]
    for (art, runtime, threads, batch), cells in rows.items():
        tops = sorted({"-" if c["top1"] is None else f"{c['top1']:.2%}" for c in cells.values()})  # None: latency only
        base = cells.get(names[0])
        vals = []
        for n in names:
            c = cells.get(n)
            if c is None:
                vals.append("-")
                continue
            x = c["latency_ms"]["p50"] if batch == 1 else c.get("throughput_ips")
            rel = "" if (n == names[0] or base is None) else (
                f" ({x / (base['latency_ms']['p50'] if batch == 1 else base['throughput_ips']):.2f}×)")
            vals.append((f"{x:.3f}" if batch == 1 else f"{x:,.0f}") + rel)
        out.append(f"| {art} | {runtime} | {threads} | {batch} | {' / '.join(tops)} | " + " | ".join(vals) + " |")
    return out


def device_markdown(report: dict, notes: tuple[str, ...] = ()) -> str:
    """report.md for several devices: their fingerprints (and why any failed), one table with
    every device side by side, the quantized-vs-float verdicts per device, then each device's
    own full report (:func:`.report.markdown`) with its headings one level down."""
    devices = report.get("devices") or []
    ok = [d["name"] for d in devices if d.get("ok")]
    cfg = report["config"]
    lines = [f"# Benchmark: {report['run']} on {len(devices)} device{'s' if len(devices) != 1 else ''}", "",
             f"Top-1 on {cfg.get('n_test')} test images; bench wall time {report.get('wall_s')} s. This machine "
             "(local) was measured alone, the SSH devices at the same time (column 'measured', s from the "
             "start), each with the same method:", "", cfg.get("method", ""), "",
             "## Devices", "",
             "| device | status | CPU | cores | ISA | OS | Python | edgesmith | LiteRT | ONNX Runtime | governor "
             "| °C (start → end) | load avg | measured (s) |",
             "|---|---|---|---:|---|---|---|---|---|---|---|---|---:|---:|"]
    lines += [_device_row(d) for d in devices]
    failed = [d for d in devices if not d.get("ok")]
    if failed:
        lines += [""] + [f"- **{d['name']}**: {d['reason']}" for d in failed]
    if report["results"] and ok:
        lines += ["", "## Side by side", "",
                  "Batch 1: p50 latency in ms; larger batches: throughput in img/s; in brackets, the value "
                  f"relative to {ok[0]}.", ""]
        lines += _side_by_side(report, ok)
    comps = report.get("comparisons") or []
    if comps:
        lines += ["", "## Quantized vs float parent, per device", ""]
        lines += [f"- {device_of(c)}: {c['quantized']}: {c['verdict']}" for c in comps]
    for name in ok:
        sub = markdown(select_device(report, name)).splitlines()
        lines += ["", f"## On {name}"] + [("#" + ln if ln.startswith("#") else ln) for ln in sub[1:]]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
