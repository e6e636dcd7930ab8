"""Regression checks: compare two results.json files beyond noise, and CI gates on one.

What counts as a change (see :func:`compare_reports`):

* batch-1 p50 latency: beyond :func:`.stats.p50_noise_ms` (10 % of the old p50, or 3 combined
  standard errors of the two medians if that is larger);
* throughput (img/s, rows with batch > 1; it is batch / median call time, so it carries
  their p50) and peak RSS of the model: beyond ``rel_tol`` (10 %) relative;
* top-1: beyond ``acc_tol_pts`` points (0.1 by default: 10 images of a 10,000-image split;
  the same artifact on the same data gives the same answer, so any drift is real, but
  runtime upgrades may flip a handful of borderline images);
* file size: any change in bytes.

Rows are matched by device, artifact, runtime, threads and batch. Results of several devices
(``edgesmith bench --device ...``) compare device by device; ``FILE#DEVICE`` picks one
device's rows, so ``--compare results.json#local results.json#ssh://pi`` compares two
devices of one bench, and two one-device files compare whatever their devices are called.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgesmith.core.errors import ConfigError

from .schema import LOCAL, READABLE_SCHEMAS, device_names, device_of, upgrade
from .stats import p50_noise_ms


def load_results(path: str | Path) -> dict:
    """Read a ``results.json`` (schema 2 or 3, see :func:`.schema.upgrade`); ``FILE#DEVICE`` keeps one device's part.

    Returns:
        The report in the current schema's shape (``schema_version`` = :data:`.schema.RESULTS_SCHEMA`; an
        older file also gets ``upgraded_from``).

    Raises:
        ConfigError: missing or unreadable file, not a results file, a schema this version cannot
            read, or no such device in it.
    """
    device = None
    if not Path(path).exists() and "#" in str(path):
        path, device = str(path).split("#", 1)
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"results file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read results file {path}: {e}") from None
    if not isinstance(data, dict) or "results" not in data:
        raise ConfigError(f"{path} is not an edgesmith results.json (no 'results')")
    if data.get("schema_version") not in READABLE_SCHEMAS:
        raise ConfigError(f"{path} has results schema {data.get('schema_version')!r}; this edgesmith reads "
                          f"schemas {', '.join(map(str, READABLE_SCHEMAS))} (re-run `edgesmith bench` to refresh it)")
    data = upgrade(data)
    if device is not None:
        from .device_report import select_device

        data = select_device(data, device)
    return data


@dataclass(frozen=True)
class Change:
    """One metric of one row that moved beyond noise.

    Attributes:
        key: ``artifact runtime tN bB``.
        metric: ``p50_ms``, ``throughput_ips``, ``top1_pct``, ``rss_model_mib`` or ``bytes``.
        old / new: values in the metric's unit.
        noise: the band the change had to exceed (same unit).
        better: True when the new value is the better one.
    """

    key: str
    metric: str
    old: float
    new: float
    noise: float
    better: bool

    @property
    def relative(self) -> float:
        """new / old - 1 (0 when old is 0)."""
        return self.new / self.old - 1 if self.old else 0.0


def _key(r: dict) -> tuple:
    return (device_of(r), r["artifact"], r["runtime"], r["threads"], r.get("batch", 1))


def _name(k: tuple) -> str:
    return ("" if k[0] == LOCAL else f"{k[0]} ") + f"{k[1]} {k[2]} t{k[3]} b{k[4]}"


def _device_envs(report: dict) -> dict[str, dict]:
    """Device name -> its fingerprint (a report without ``devices`` is one device, its rows' one)."""
    if report.get("devices"):
        return {d["name"]: d.get("environment") or {} for d in report["devices"]}
    return {n: report.get("environment", {}) for n in device_names(report)}


def _env_notes(old: dict, new: dict, rel_tol: float, prefix: str) -> list[str]:
    notes = []
    if old.get("cpu") != new.get("cpu"):
        notes.append(f"{prefix}measured on different CPUs: latency changes may be the machine")
    lo, ln = _busy({"environment": old}), _busy({"environment": new})
    if lo is not None and ln is not None and abs(ln - lo) > 1.0:
        notes.append(f"{prefix}machine load differed (load average up to {lo:g} vs {ln:g}): latency changes may be "
                     "other processes, not the model")
    po, pn = old.get("cpu_probe_ms"), new.get("cpu_probe_ms")
    if po and pn and abs(pn / po - 1) > rel_tol:
        notes.append(f"{prefix}the CPU probe (a fixed sort, timed in every cell) took {abs(pn / po - 1):.0%} "
                     f"{'longer' if pn > po else 'less time'} in NEW: the machine itself was in a different state")
    return notes


def compare_reports(old: dict, new: dict, *, rel_tol: float = 0.10, acc_tol_pts: float = 0.1,
                    z: float = 3.0) -> dict:
    """Rows of ``new`` against the same device x artifact x runtime x threads x batch in ``old``
    (two one-device reports: the same artifact x runtime x threads x batch, whatever the devices).

    Args:
        old, new: reports as loaded by :func:`load_results`.
        rel_tol: relative noise band for latency, throughput and memory (fraction).
        acc_tol_pts: top-1 noise band in percentage points.
        z: standard errors for the sampling part of the p50 noise band.

    Returns:
        ``{"changes": [Change], "only_old": [key], "only_new": [key], "compared": int,
        "notes": [str]}``.
    """
    eo, en = _device_envs(old), _device_envs(new)
    pairs = ({a: b for a, b in zip(eo, en)} if len(eo) == len(en) == 1  # one device each: compare them, whatever
             else {d: d for d in eo if d in en})                      # their names; else device by device
    o = {_key(r): r for r in old["results"]}
    rename = {b: a for a, b in pairs.items()}
    n = {(rename.get(k[0], k[0]), *k[1:]): r for k, r in ((_key(r), r) for r in new["results"])}
    changes, notes = [], []
    if old.get("config", {}).get("n_test") != new.get("config", {}).get("n_test"):
        notes.append(f"test sets differ ({old['config'].get('n_test')} vs {new['config'].get('n_test')} images): "
                     "top-1 is not comparable")
    for a, b in pairs.items():
        notes += _env_notes(eo[a], en[b], rel_tol, "" if len(pairs) == 1 and a == b else
                            (f"{a}: " if a == b else f"{a} vs {b}: "))
    for k in sorted(set(o) & set(n), key=str):
        a, b = o[k], n[k]
        la, lb = a["latency_ms"], b["latency_ms"]
        band = p50_noise_ms(la, lb, rel_tol=rel_tol, z=z)
        if a.get("batch", 1) == 1 and abs(lb["p50"] - la["p50"]) > band:  # larger batches: throughput below
            changes.append(Change(_name(k), "p50_ms", la["p50"], lb["p50"], band, lb["p50"] < la["p50"]))
        ta, tb = a.get("throughput_ips"), b.get("throughput_ips")
        if ta and tb and a.get("batch", 1) > 1 and abs(tb - ta) > rel_tol * ta:
            changes.append(Change(_name(k), "throughput_ips", ta, tb, rel_tol * ta, tb > ta))
        if a["n_test"] and a["n_test"] == b["n_test"] and abs(b["top1"] - a["top1"]) * 100 > acc_tol_pts:
            changes.append(Change(_name(k), "top1_pct", a["top1"] * 100, b["top1"] * 100, acc_tol_pts, b["top1"] > a["top1"]))
        ma, mb = a.get("rss_model_mib"), b.get("rss_model_mib")
        if ma and mb and abs(mb - ma) > max(rel_tol * ma, 2.0):
            changes.append(Change(_name(k), "rss_model_mib", ma, mb, max(rel_tol * ma, 2.0), mb < ma))
        if a["bytes"] != b["bytes"]:
            changes.append(Change(_name(k), "bytes", a["bytes"], b["bytes"], 0, b["bytes"] < a["bytes"]))
    return {"changes": changes, "only_old": [_name(k) for k in o if k not in n],
            "only_new": [_name(k) for k in n if k not in o], "compared": len(set(o) & set(n)), "notes": notes}


def _busy(report: dict) -> float | None:
    env = report.get("environment", {})
    loads = [x for x in (env.get("load_avg_start"), env.get("load_avg")) if x is not None]
    return max(loads) if loads else None


def gate_failures(report: dict, *, min_accuracy_pct: float | None = None,
                  max_latency_ms: float | None = None) -> list[str]:
    """CI gates on a report: every row must reach ``min_accuracy_pct`` top-1 (percent) and every
    batch-1 row must have p50 <= ``max_latency_ms``.

    Returns:
        One line per failing row and gate; empty when everything passes.

    Raises:
        ConfigError: a gate was asked for but the report has no row it applies to.
    """
    fails = []
    rows = report["results"]
    if min_accuracy_pct is not None:
        if not rows:
            raise ConfigError("min_accuracy_pct: the results hold no measured row",
                              field="gate_failures.min_accuracy_pct")
        fails += [f"{_name(_key(r))}: top-1 {r['top1']:.2%} < {min_accuracy_pct:g}%"
                  for r in rows if r["top1"] is not None and r["top1"] * 100 < min_accuracy_pct]
    if max_latency_ms is not None:
        b1 = [r for r in rows if r.get("batch", 1) == 1]
        if not b1:
            raise ConfigError("max_latency_ms: the results hold no batch-1 row", field="gate_failures.max_latency_ms")
        fails += [f"{_name(_key(r))}: p50 {r['latency_ms']['p50']:.3f} ms > {max_latency_ms:g} ms"
                  for r in b1 if r["latency_ms"]["p50"] > max_latency_ms]
    return fails
