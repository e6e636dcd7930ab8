"""Microcontroller latency estimates: MACs from the TFLite graph x cycles per MAC / clock. No TensorFlow.

An int8 CNN on a Cortex-M spends its time in multiply-accumulates, and the cycles one MAC costs
depends mostly on the core (DSP dual-MAC or not, Helium, the memory system) and on the inference
engine (its kernels). So

    latency_ms = MACs x cycles_per_MAC / clock_MHz / 1000

with ``cycles_per_MAC`` read from published MLPerf Tiny ResNet-8 results (``calibration`` in
:mod:`boards.json <edgesmith.benchmarks.boards>`; 23 Cortex-M systems, six engines) in this order
(:func:`cycles_per_mac`):

1. ``published``: the board itself has a published row for the engine;
2. ``model``: a log-additive fit over all rows, log(cycles/MAC) = core term + engine term
   (:func:`fit_factors`; least squares), so every engine's rows inform every core;
3. ``other network``: a core with no ResNet-8 row (the ESP32 family) takes a published latency of
   another network under TFLite Micro, its MACs counted from the model file.

It is an estimate, with a band, never a measurement: memory wait states, the layer shapes and the
compiler all move it. :func:`leave_one_out` checks the fit against each published row with that
row left out; docs/mcu.md has the figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .boards import board_spec, load_boards

BAND = 0.30  # the estimate's stated band for a calibrated core + runtime (docs/mcu.md)
UNCALIBRATED_BAND = 1.0  # a figure resting on one row or another network: it may be half or double
DEFAULT_RUNTIME = "tflm-cmsis-nn"


def count_macs(flatbuffer: bytes) -> dict:
    """Multiply-accumulates of one inference (batch 1), from the TFLite graph's shapes.

    Counts ``CONV_2D`` (out H x W x Cout x Kh x Kw x Cin), ``DEPTHWISE_CONV_2D`` (out H x W x
    C x Kh x Kw), ``FULLY_CONNECTED`` (units x inputs) and ``TRANSPOSE_CONV``; other ops
    (pooling, add, softmax) are left out, as MLPerf Tiny's 12.5 M for ResNet-8 leaves them.

    Args:
        flatbuffer: a ``.tflite`` model.

    Returns:
        ``{"macs": int, "by_op": {"CONV_2D": int, ...}}``.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    graph = model.subgraphs[0]
    op = schema.BuiltinOperator
    names = {v: k for k, v in vars(op).items() if not k.startswith("_")}
    by_op: dict[str, int] = {}

    def dims(t: int) -> list[int]:
        return [int(d) for d in graph.tensors[t].shape]

    for node in graph.operators or ():
        code = model.operatorCodes[node.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == op.CONV_2D:
            out, ker = dims(node.outputs[0]), dims(node.inputs[1])  # ker: Cout, Kh, Kw, Cin
            macs = int(np.prod(out[1:])) * ker[1] * ker[2] * ker[3]
        elif builtin == op.DEPTHWISE_CONV_2D:
            out, ker = dims(node.outputs[0]), dims(node.inputs[1])  # ker: 1, Kh, Kw, C
            macs = int(np.prod(out[1:])) * ker[1] * ker[2]
        elif builtin == op.FULLY_CONNECTED:
            ker = dims(node.inputs[1])  # units, inputs
            rows = int(np.prod(dims(node.outputs[0])[:-1])) or 1
            macs = max(rows, 1) * ker[0] * ker[1]
        elif builtin == op.TRANSPOSE_CONV:
            inp, ker = dims(node.inputs[2]), dims(node.inputs[1])  # ker: Cout, Kh, Kw, Cin
            macs = int(np.prod(inp[1:3])) * ker[0] * ker[1] * ker[2] * ker[3]
        else:
            continue
        by_op[names[builtin]] = by_op.get(names[builtin], 0) + macs
    return {"macs": sum(by_op.values()), "by_op": by_op}


def calibration_points(data: dict | None = None) -> list[dict]:
    """The published rows with their board's core and clock and the cycles per MAC they imply.

    Returns:
        ``[{"board", "runtime", "core", "clock_mhz", "latency_ms", "macs", "cycles_per_mac", ...}, ...]``
        (the row's ``round``, ``submitter``, ``system`` and ``software`` carried along).
    """
    data = data or load_boards()
    macs = data["calibration"]["macs"]
    points = []
    for row in data["calibration"]["rows"]:
        b = data["boards"][row["board"]]
        cpm = b["clock_mhz"] * 1e6 * row["latency_ms"] / 1e3 / macs
        points.append({**row, "core": b["core"], "clock_mhz": b["clock_mhz"], "macs": macs,
                       "cycles_per_mac": cpm})
    return points


def fit_factors(points: list[dict]) -> dict:
    """Least-squares fit of log(cycles/MAC) = core term + engine term over published rows.

    The two sets of terms are defined up to a shared constant; only their sums are used, and only
    for a core and an engine linked through the rows (same connected group), so the sum is unique.

    Args:
        points: from :func:`calibration_points`.

    Returns:
        ``{"core": {core: term}, "runtime": {engine: term}, "n_core": {core: rows},
        "n_runtime": {engine: rows}, "group": {("core"|"runtime", name): group id}}``.
    """
    cores = sorted({p["core"] for p in points})
    engines = sorted({p["runtime"] for p in points})
    x = np.zeros((len(points), len(cores) + len(engines)))
    y = np.log([p["cycles_per_mac"] for p in points])
    for i, p in enumerate(points):
        x[i, cores.index(p["core"])] = x[i, len(cores) + engines.index(p["runtime"])] = 1
    terms = np.linalg.lstsq(x, y, rcond=None)[0] if len(points) else np.zeros(0)
    group = {("core", c): ("core", c) for c in cores} | {("runtime", r): ("runtime", r) for r in engines}

    def root(k):
        while group[k] != k:
            k = group[k]
        return k

    for p in points:  # union-find over the bipartite core-engine graph
        group[root(("core", p["core"]))] = root(("runtime", p["runtime"]))
    return {"core": dict(zip(cores, terms[:len(cores)])), "runtime": dict(zip(engines, terms[len(cores):])),
            "n_core": {c: sum(p["core"] == c for p in points) for c in cores},
            "n_runtime": {r: sum(p["runtime"] == r for p in points) for r in engines},
            "group": {k: root(k) for k in group}}


def _model_cpm(factors: dict, core: str, runtime: str) -> float | None:
    """exp(core term + engine term), or ``None`` when the rows do not link them."""
    g = factors["group"]
    if ("core", core) not in g or ("runtime", runtime) not in g or g["core", core] != g["runtime", runtime]:
        return None
    return float(np.exp(factors["core"][core] + factors["runtime"][runtime]))


def cycles_per_mac(core: str, runtime: str = DEFAULT_RUNTIME, *, board: str | None = None,
                   points: list[dict] | None = None, data: dict | None = None) -> dict | None:
    """Cycles one MAC costs on ``core`` (on ``board``, when given) with ``runtime``, and where the figure comes from.

    1. ``published``: ``board`` has a published row with ``runtime``: that row's figure;
    2. ``model``: :func:`fit_factors` over all rows. The band is :data:`BAND` when the core and the
       engine each have at least two rows, else :data:`UNCALIBRATED_BAND` (a term resting on one row
       has never been checked against another);
    3. ``other network``: a core with no ResNet-8 row but a published latency of another network
       under the same engine (``other_network_rows`` in boards.json: the ESP32 family's TFLM person
       detection figures), band :data:`UNCALIBRATED_BAND`.

    Returns:
        ``{"cycles_per_mac", "basis", "band", "points": [short source names]}``, or ``None``.
    """
    data = data or load_boards()
    points = calibration_points(data) if points is None else points
    own = [p for p in points if board is not None and p["board"] == board and p["runtime"] == runtime]
    if own:
        p = own[0]
        return {"cycles_per_mac": p["cycles_per_mac"], "basis": "published", "band": BAND,
                "points": [f"MLPerf Tiny {p['round']}: {p['software']}"]}
    factors = fit_factors(points)
    cpm = _model_cpm(factors, core, runtime)
    if cpm is not None:
        n_core, n_rt = factors["n_core"][core], factors["n_runtime"][runtime]
        return {"cycles_per_mac": cpm, "basis": "model", "band": BAND if min(n_core, n_rt) >= 2 else UNCALIBRATED_BAND,
                "points": [f"{n_core} {core} row{'s' * (n_core != 1)}", f"{n_rt} {runtime} row{'s' * (n_rt != 1)}"]}
    for row in (data.get("other_network_rows") or {}).get("rows", []):
        spec = data["boards"][row["board"]]
        if spec["core"] == core and row["runtime"] == runtime:
            cpm = spec["clock_mhz"] * 1e3 * row["latency_ms"] / row["macs"]
            return {"cycles_per_mac": cpm, "basis": "other network", "band": UNCALIBRATED_BAND,
                    "points": [f"{row['network']}: {row['latency_ms']:g} ms on {row['board']}"],
                    "why": f"no published ResNet-8 row for {core}; {row['software']}, {row['source']}"}
    return None


def estimate_latency(macs: int, board: str, runtime: str = DEFAULT_RUNTIME, *, data: dict | None = None) -> dict:
    """Estimated latency of one inference on ``board``: MACs x cycles per MAC / clock.

    Example::

        estimate_latency(12_500_000, "nucleo-l4r5zi")  # {"ms": 704.23, "basis": "published", ...}

    Args:
        macs: from :func:`count_macs`.
        board: a key of boards.json (:func:`~.boards.board_spec`).
        runtime: an engine of boards.json ``runtimes``: ``tflm-cmsis-nn`` (the default), ``x-cube-ai``,
            ``plumerai``, ``bosch-hale``, ``microtvm-cmsis-nn``, ``onnc``.

    Returns:
        ``{"ms", "low_ms", "high_ms", "band", "basis", "cycles_per_mac", "points", "runtime"}`` (ms per
        inference, batch 1; ``low_ms`` = ms / (1 + band), ``high_ms`` = ms x (1 + band)); ``ms`` is
        ``None`` (with ``basis`` saying why) when nothing calibrates this core + runtime.

    Raises:
        ConfigError: an unknown board.
    """
    data = data or load_boards()
    spec = board_spec(board, data)
    cpm = cycles_per_mac(spec["core"], runtime, board=board.lower(), data=data)
    if cpm is None:
        return {"ms": None, "low_ms": None, "high_ms": None, "band": None, "runtime": runtime,
                "basis": f"no published row for {spec['core']} with {runtime}", "cycles_per_mac": None, "points": []}
    ms = macs * cpm["cycles_per_mac"] / (spec["clock_mhz"] * 1e3)
    band = cpm["band"]
    return {"ms": round(ms, 2), "low_ms": round(ms / (1 + band), 2), "high_ms": round(ms * (1 + band), 2),
            "band": band, "basis": cpm["basis"], "cycles_per_mac": round(cpm["cycles_per_mac"], 3),
            "points": cpm["points"], "runtime": runtime, **({"why": cpm["why"]} if "why" in cpm else {})}


def leave_one_out(data: dict | None = None) -> list[dict]:
    """Each published row predicted by :func:`fit_factors` over the other rows.

    A row whose core or engine appears in no other row cannot be predicted (``how == "none"``).

    Returns:
        ``[{"board", "runtime", "core", "clock_mhz", "latency_ms", "predicted_ms", "error", "how",
        "n_core", "n_runtime"}, ...]`` in the file's order; ``error`` = predicted / published - 1
        (``None`` for ``how == "none"``); ``n_core`` / ``n_runtime``: the other rows of that core / engine.
    """
    data = data or load_boards()
    points = calibration_points(data)
    out = []
    for i, row in enumerate(points):
        factors = fit_factors(points[:i] + points[i + 1:])
        cpm = _model_cpm(factors, row["core"], row["runtime"])
        ms = None if cpm is None else cpm * row["macs"] / (row["clock_mhz"] * 1e3)
        out.append({"board": row["board"], "runtime": row["runtime"], "core": row["core"],
                    "clock_mhz": row["clock_mhz"], "latency_ms": row["latency_ms"],
                    "predicted_ms": None if ms is None else round(ms, 1),
                    "error": None if ms is None else round(ms / row["latency_ms"] - 1, 3),
                    "how": "none" if ms is None else "model",
                    "n_core": factors["n_core"].get(row["core"], 0),
                    "n_runtime": factors["n_runtime"].get(row["runtime"], 0)})
    return out


def read_macs(path: str | Path) -> dict:
    """:func:`count_macs` of a ``.tflite`` file."""
    return count_macs(Path(path).read_bytes())
