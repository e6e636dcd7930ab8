"""The results file's shape: its schema version and how a row or a device entry names its device.

Every module that reads or writes ``results.json`` takes these from here, so none of them needs
the suite, the devices or the reports to know them.
"""
from __future__ import annotations

RESULTS_SCHEMA = 2
LOCAL = "local"  # the device name of this machine


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
