"""One report for several devices: merging per-device reports, picking one out, and report.md.

A merged report is an ordinary ``results.json`` (same schema) whose rows, accuracy entries,
comparisons and skipped entries each carry a ``device`` key, plus ``devices``: one entry per
device with ``name``, ``kind`` (``local`` / ``ssh``), ``ok``, ``reason`` (one line when it
failed), ``environment`` (its fingerprint) and ``targets``. A report without ``device`` keys
(one written before devices existed) is the ``local`` device's.
"""
from __future__ import annotations

from pathlib import Path

from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import RunDir, load_manifest, now_iso

from .devices import LOCAL

_PER_DEVICE = ("results", "accuracy", "skipped", "comparisons", "verify_accuracy", "divergences")


def device_of(entry: dict) -> str:
    """The device a row or entry was measured on (``local`` when the report predates devices)."""
    return entry.get("device") or LOCAL


def device_names(report: dict) -> list[str]:
    """Every device of a report, in the order measured (from ``devices``, else from its rows)."""
    if report.get("devices"):
        return [d["name"] for d in report["devices"]]
    names: list[str] = []
    for r in report.get("results", []):
        if device_of(r) not in names:
            names.append(device_of(r))
    return names or [LOCAL]


def tag_device_report(part: dict, name: str, recommend_budget: float | None = None) -> dict:
    """Mark every entry of one device's report with ``device``, and add its comparisons (and
    recommendation, with ``recommend_budget``) computed on its own rows and fingerprint. In place."""
    from .advice import recommend
    from .report import comparisons

    part["comparisons"] = comparisons(part["results"], part.get("environment"))
    for key in _PER_DEVICE:
        part[key] = [{"device": name, **{k: v for k, v in e.items() if k != "device"}} for e in part.get(key) or []]
    if recommend_budget is not None and part["results"]:
        part["recommendation"] = {"device": name, **recommend(part, recommend_budget)}
    return part


def merge_reports(run_dir: str | Path, config, parts: list[dict], entries: list[dict], *, wall_s: float) -> dict:
    """One report from the per-device reports ``parts`` and the device entries (ok or failed).

    The top-level ``environment``, ``config`` and ``reference`` are the first measured
    device's (each device's own fingerprint is in ``devices``); lists are concatenated.
    """
    from .suite import RESULTS_SCHEMA

    first = parts[0] if parts else None
    if first is None:
        manifest = load_manifest(RunDir(run_dir))
        first = {"run": manifest["run"], "environment": {}, "reference": {}, "targets": {}, "class_names": [],
                 "config": {"targets": list(config.targets), "threads": list(config.threads),
                            "batches": list(config.batches), "seconds": config.seconds, "rounds": config.rounds,
                            "n_test": None, "method": config.method()}}
    by_env = {p["environment"].get("device"): p["targets"] for p in parts}
    merged = {"schema_version": RESULTS_SCHEMA, "run": first["run"], "created": now_iso(), "wall_s": round(wall_s, 1),
              "environment": first["environment"], "config": first["config"], "reference": first["reference"],
              "targets": first["targets"], "class_names": first["class_names"],
              "devices": [{**e, "targets": by_env.get(e["name"], {})} for e in entries]}
    for key in _PER_DEVICE:
        merged[key] = [x for p in parts for x in p.get(key) or []]
    recs = [p["recommendation"] for p in parts if p.get("recommendation")]
    if recs:
        merged["recommendations"] = recs
        if len(entries) == 1:
            merged["recommendation"] = recs[0]
    return merged


def select_device(report: dict, name: str) -> dict:
    """The part of a (merged) report measured on device ``name``, as a one-device report.

    Raises:
        ConfigError: the report has no device of that name (the message lists those it has).
    """
    names = device_names(report)
    if name not in names:
        raise ConfigError(f"results of {report.get('run')} have no device {name!r}; they have {', '.join(names)}")
    sub = dict(report)
    entry = next((d for d in report.get("devices") or [] if d["name"] == name), None)
    if entry is not None:
        sub["devices"] = [entry]
        sub["environment"] = entry.get("environment") or {}
        sub["targets"] = entry.get("targets") or report.get("targets", {})
    for key in _PER_DEVICE:
        sub[key] = [x for x in report.get(key) or [] if device_of(x) == name]
    recs = [r for r in report.get("recommendations") or [] if device_of(r) == name]
    sub.pop("recommendations", None)
    sub.pop("recommendation", None)
    if recs:
        sub["recommendation"] = recs[0]
    return sub


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
        rows.setdefault((r["artifact"], r["target"], r["threads"], r.get("batch", 1)), {})[device_of(r)] = r
    head = "| artifact | target | threads | batch | top-1 | " + " | ".join(names) + " |"
    out = [head, "|---|---|---:|---:|---:|" + "---:|" * len(names)]
    for (art, target, threads, batch), cells in rows.items():
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
        out.append(f"| {art} | {target} | {threads} | {batch} | {' / '.join(tops)} | " + " | ".join(vals) + " |")
    return out


def device_markdown(report: dict, notes: tuple[str, ...] = ()) -> str:
    """report.md for several devices: their fingerprints (and why any failed), one table with
    every device side by side, the quantized-vs-float verdicts per device, then each device's
    own full report (:func:`.report.markdown`) with its headings one level down."""
    from .report import markdown

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
