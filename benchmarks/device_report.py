"""One report for several devices: merging per-device reports, picking one out, and report.md.

A merged report is an ordinary ``results.json`` (same schema) whose rows, accuracy entries,
comparisons and skipped entries each carry a ``device`` key, plus ``devices``: one entry per
device with ``name``, ``kind`` (``local`` / ``ssh``), ``ok``, ``reason`` (one line when it
failed), ``environment`` (its fingerprint) and ``runtimes``. A report without ``device`` keys
(one written before devices existed) is the ``local`` device's.
"""
from __future__ import annotations

from pathlib import Path

from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import RunDir, load_manifest, now_iso

from .schema import LOCAL, RESULTS_SCHEMA, device_names, device_of

_PER_DEVICE = ("results", "accuracy", "skipped", "comparisons", "verify_accuracy", "divergences")


def tag_device_report(part: dict, name: str, recommend_budget: float | None = None) -> dict:
    """Mark every entry of one device's report with ``device``, and add its comparisons (and
    recommendation, with ``recommend_budget``) computed on its own rows and fingerprint. In place."""
    from .advice import recommend
    from .verdicts import comparisons

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

    first = parts[0] if parts else None
    if first is None:
        manifest = load_manifest(RunDir(run_dir))
        first = {"run": manifest["run"], "environment": {}, "reference": {}, "runtimes": {}, "class_names": [],
                 "config": {"runtimes": list(config.runtimes), "threads": list(config.threads),
                            "batches": list(config.batches), "seconds": config.seconds, "rounds": config.rounds,
                            "n_test": None, "method": config.method()}}
    by_env = {p["environment"].get("device"): p["runtimes"] for p in parts}
    merged = {"schema_version": RESULTS_SCHEMA, "run": first["run"], "created": now_iso(), "wall_s": round(wall_s, 1),
              "environment": first["environment"], "config": first["config"], "reference": first["reference"],
              "runtimes": first["runtimes"], "class_names": first["class_names"],
              "devices": [{**e, "runtimes": by_env.get(e["name"], {})} for e in entries]}
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
        sub["runtimes"] = entry.get("runtimes") or report.get("runtimes", {})
    for key in _PER_DEVICE:
        sub[key] = [x for x in report.get(key) or [] if device_of(x) == name]
    recs = [r for r in report.get("recommendations") or [] if device_of(r) == name]
    sub.pop("recommendations", None)
    sub.pop("recommendation", None)
    if recs:
        sub["recommendation"] = recs[0]
    return sub
