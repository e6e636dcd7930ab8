"""Board rows for ``bench --board``: each Cortex-M file of a run against each board, fit and latency estimate.

Composes :mod:`.boards` (the board data and the fit) with :mod:`.mcu_estimate` (MACs and the latency
estimate), so neither of those imports the other's caller.
"""
from __future__ import annotations

from pathlib import Path

from edgesmith.core.errors import ConfigError, RunDirError

from .boards import board_spec, fit, load_boards
from .mcu_estimate import DEFAULT_RUNTIME, estimate_latency, read_macs


def board_report(run_dir: str | Path, boards: list[str], runtime: str | None = None) -> list[dict]:
    """Fit and estimated latency of every Cortex-M file of a run on each board.

    Args:
        run_dir: a run exported with ``--target cortex-m``.
        boards: names of boards.json (``nucleo-l4r5zi``, ``nano33ble``, ``pico``, ...).
        runtime: the inference engine of the latency estimate (default ``tflm-cmsis-nn``).

    Returns:
        One row per (artifact, board): ``{"artifact", "board", "board_name", "core", "clock_mhz",
        "macs", "arena_bytes", "recommended_arena_bytes", "model_bytes", "tflm_top1", "tflm_n", **fit,
        "latency": {...}}`` (``tflm_top1``: top-1 under TFLite Micro on ``tflm_n`` test images, at export).

    Raises:
        ConfigError: an unknown board or runtime. RunDirError: no manifest, no Cortex-M file,
        or the file changed since export.
    """
    from edgesmith.core.rundir import RunDir, load_manifest, verify_file

    data = load_boards()
    runtime = runtime or DEFAULT_RUNTIME
    if runtime not in data["runtimes"]:
        raise ConfigError(f"unknown MCU runtime {runtime!r}; choose from {', '.join(data['runtimes'])}")
    specs = {b: board_spec(b, data) for b in boards}  # an unknown name fails before any file is read
    run = RunDir(run_dir)
    micro = [a for a in load_manifest(run).get("artifacts", []) if "micro" in a]
    if not micro:
        raise RunDirError(f"{run.root} has no Cortex-M file: run `edgesmith export {run.root} --target cortex-m` "
                          "first (it measures the arena under TFLite Micro)")
    rows = []
    for art in micro:
        path = verify_file(run, art)
        macs = read_macs(path)["macs"]
        arena = art["micro"]["arena"]
        for name, spec in specs.items():
            rows.append({"artifact": art["name"], "board": name, "board_name": spec["name"], "core": spec["core"],
                         "clock_mhz": spec["clock_mhz"], "macs": macs, "arena_bytes": arena["bytes"],
                         "recommended_arena_bytes": arena["recommended_bytes"], "model_bytes": art["bytes"],
                         "tflm_top1": art["micro"]["verify"]["top1"], "tflm_n": art["micro"]["verify"]["n"],
                         **fit(spec, arena_bytes=arena["recommended_bytes"], model_bytes=art["bytes"],
                               n_ops=len({o["op"] for o in art["micro"]["ops"]}), data=data),
                         "latency": estimate_latency(macs, name, runtime, data=data)})
    return rows
