"""The results file's shape: its schema version, how a row or a device entry names its device, and
:func:`upgrade`, the one place an older schema is mapped to this one (every reader of a
``results.json`` file goes through :func:`.compare.load_results`, which calls it).

Every module that reads or writes ``results.json`` takes these from here, so none of them needs
the suite, the devices or the reports to know them.

Schema history:

* 3: a bench runtime (``litert-cpu``, ``ort-cpu``, ...) is ``runtime`` in every row, accuracy,
  skipped, comparison, verify and divergence entry and in the recommendation; ``runtimes`` is the
  per-runtime status (top level and per device) and the config's list. ("target" now means only
  the CPU family an int8 file is exported for, ``export --target``.)
* 2: the same keys were ``target`` / ``targets``; still read, renamed on load by :func:`upgrade`.
"""
from __future__ import annotations

RESULTS_SCHEMA = 3
READABLE_SCHEMAS = (2, 3)  # what .compare.load_results accepts; older ones are upgraded to RESULTS_SCHEMA
_RENAMED_IN_3 = {"target": "runtime", "targets": "runtimes"}
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


def _rename_keys(node, names: dict[str, str]):
    """``node`` with every dict key in ``names`` renamed, at any depth (lists and dicts rebuilt)."""
    if isinstance(node, dict):
        return {names.get(k, k): _rename_keys(v, names) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_keys(v, names) for v in node]
    return node


def upgrade(data: dict) -> dict:
    """A results document of any readable schema in the shape of :data:`RESULTS_SCHEMA`.

    Schema 2 -> 3 renames the keys ``target`` -> ``runtime`` and ``targets`` -> ``runtimes`` wherever
    they occur (a schema-2 file holds no other key of those names). A current document comes back
    unchanged (the same object).
    """
    if data.get("schema_version") == 2:
        data = {**_rename_keys(data, _RENAMED_IN_3), "schema_version": RESULTS_SCHEMA, "upgraded_from": 2}
    return data
