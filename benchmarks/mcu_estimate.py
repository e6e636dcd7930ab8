"""Microcontroller latency estimates: MACs from the TFLite graph x cycles per MAC / clock. No TensorFlow.

An int8 CNN on a Cortex-M spends its time in multiply-accumulates, and the cycles one MAC costs
is fairly stable for a given core and inference engine: for the published MLPerf Tiny ResNet-8
rows (:data:`boards.json <edgesmith.benchmarks.boards>` ``calibration``) it ranges from 0.33
(Cortex-M85, TFLite Micro + CMSIS-NN) to 6.8 (Cortex-M4F, the same engine). So

    latency_ms = MACs x cycles_per_MAC(core, runtime) / clock_MHz / 1000

with ``cycles_per_MAC`` the mean of the published rows for that core and runtime
(:func:`cycles_per_mac`). It is an estimate, with a band (:data:`BAND`), never a measurement:
memory wait states, the layer shapes (a 1x1 conv is cheaper per MAC than a 3x3 one in
CMSIS-NN) and the compiler all move it. :func:`leave_one_out` checks the estimator against
each published row with that row left out; docs/mcu.md has the figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .boards import board_spec, load_boards

BAND = 0.30  # the estimate's stated band for a calibrated core + runtime (docs/mcu.md)
UNCALIBRATED_BAND = 1.0  # an assumed core factor: the true figure may be half or double
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
        ``[{"board", "runtime", "core", "clock_mhz", "latency_ms", "macs", "cycles_per_mac"}, ...]``.
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


def cycles_per_mac(core: str, runtime: str = DEFAULT_RUNTIME, *, points: list[dict] | None = None,
                   data: dict | None = None) -> dict | None:
    """Cycles one MAC costs on ``core`` with ``runtime``, and where the figure comes from.

    1. ``calibrated``: the mean of the published rows for this core and runtime;
    2. ``assumed``: a core with no published row (Cortex-M0+, Xtensa LX7) takes a stated factor
       of a calibrated core (``uncalibrated_cores`` in boards.json), with a wider band.

    Returns:
        ``{"cycles_per_mac", "basis", "band", "points": [boards]}``, or ``None`` when neither applies.
    """
    data = data or load_boards()
    points = calibration_points(data) if points is None else points
    same = [p for p in points if p["core"] == core and p["runtime"] == runtime]
    if same:
        return {"cycles_per_mac": float(np.mean([p["cycles_per_mac"] for p in same])), "basis": "calibrated",
                "band": BAND, "points": [p["board"] for p in same]}
    assumed = data.get("uncalibrated_cores", {}).get(core)
    if assumed:
        base = cycles_per_mac(assumed["like"], runtime, points=points, data=data)
        if base and base["basis"] == "calibrated":
            return {"cycles_per_mac": base["cycles_per_mac"] * assumed["factor"], "basis": "assumed",
                    "band": UNCALIBRATED_BAND, "points": base["points"], "why": assumed["why"]}
    return None


def estimate_latency(macs: int, board: str, runtime: str = DEFAULT_RUNTIME, *, data: dict | None = None) -> dict:
    """Estimated latency of one inference on ``board``: MACs x cycles per MAC / clock.

    Example::

        estimate_latency(12_500_000, "nano33ble")  # {"ms": 1320.0, "low_ms": 924.0, ...}

    Args:
        macs: from :func:`count_macs`.
        board: a key of boards.json (:func:`~.boards.board_spec`).
        runtime: ``tflm-cmsis-nn`` (the default), ``x-cube-ai``, ``microtvm-cmsis-nn``, ``plumerai``.

    Returns:
        ``{"ms", "low_ms", "high_ms", "band", "basis", "cycles_per_mac", "points", "runtime"}``;
        ``ms`` is ``None`` (with ``basis`` saying why) when nothing calibrates this core + runtime.

    Raises:
        ConfigError: an unknown board.
    """
    data = data or load_boards()
    spec = board_spec(board, data)
    cpm = cycles_per_mac(spec["core"], runtime, data=data)
    if cpm is None:
        return {"ms": None, "low_ms": None, "high_ms": None, "band": None, "runtime": runtime,
                "basis": f"no published row for {spec['core']} with {runtime}", "cycles_per_mac": None, "points": []}
    ms = macs * cpm["cycles_per_mac"] / (spec["clock_mhz"] * 1e3)
    band = cpm["band"]
    return {"ms": round(ms, 2), "low_ms": round(ms / (1 + band), 2), "high_ms": round(ms * (1 + band), 2),
            "band": band, "basis": cpm["basis"], "cycles_per_mac": round(cpm["cycles_per_mac"], 3),
            "points": cpm["points"], "runtime": runtime, **({"why": cpm["why"]} if "why" in cpm else {})}


def leave_one_out(data: dict | None = None) -> list[dict]:
    """Each published row predicted from the others.

    With the row left out, its core + runtime is predicted from the remaining rows of the same
    core and runtime when there are any (``same``), else through a rectangle of other rows,
    cpm(core, other runtime) x cpm(other core, runtime) / cpm(other core, other runtime)
    (``cross``: the runtime's speed-up assumed the same on every core; the geometric mean over
    all rectangles), else not at all (``none``: nothing left to check it against).

    Returns:
        ``[{"board", "runtime", "core", "latency_ms", "predicted_ms", "error", "how"}, ...]``;
        ``error`` = predicted / published - 1 (``None`` for ``how == "none"``).
    """
    data = data or load_boards()
    points = calibration_points(data)
    out = []
    for i, row in enumerate(points):
        rest = points[:i] + points[i + 1:]
        cpm = {}
        for p in rest:
            cpm.setdefault((p["core"], p["runtime"]), []).append(p["cycles_per_mac"])
        cpm = {k: float(np.mean(v)) for k, v in cpm.items()}
        key = (row["core"], row["runtime"])
        predicted, how = None, "none"
        if key in cpm:
            predicted, how = cpm[key], "same"
        else:
            rects = [cpm[(row["core"], r2)] * cpm[(c2, row["runtime"])] / cpm[(c2, r2)]
                     for (c2, r2) in cpm if c2 != row["core"] and r2 != row["runtime"]
                     and (row["core"], r2) in cpm and (c2, row["runtime"]) in cpm]
            if rects:
                predicted, how = float(np.exp(np.mean(np.log(rects)))), "cross"
        ms = None if predicted is None else predicted * row["macs"] / (row["clock_mhz"] * 1e3)
        out.append({"board": row["board"], "runtime": row["runtime"], "core": row["core"],
                    "latency_ms": row["latency_ms"], "predicted_ms": None if ms is None else round(ms, 1),
                    "error": None if ms is None else round(ms / row["latency_ms"] - 1, 3), "how": how})
    return out


def read_macs(path: str | Path) -> dict:
    """:func:`count_macs` of a ``.tflite`` file."""
    return count_macs(Path(path).read_bytes())
