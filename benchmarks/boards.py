"""Microcontroller boards: does a Cortex-M file fit, and how fast will it be (an estimate). No TensorFlow.

The boards, their core, clock, RAM and flash, and the published latencies the estimate is
calibrated on live in ``boards.json`` beside this module (package data). ``edgesmith bench RUN
--board NAME`` reads the ``micro`` record that ``export --target cortex-m`` left in the manifest
(the arena TFLite Micro measured, the ops) and answers, per board:

* RAM: the recommended arena (measured + CMSIS-NN scratch + 10%) + a stated overhead for the
  stack, interpreter and application (``ram_overhead_kb``) <= the board's SRAM;
* flash: the model file + a code-size estimate (``flash_code_kb``: the TFLite Micro core plus
  a few KB per op kind) <= the board's flash;
* latency: :func:`edgesmith.benchmarks.mcu_estimate.estimate_latency`, an estimate with a band.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from edgesmith.core.errors import ConfigError

BOARDS_FILE = Path(__file__).with_name("boards.json")


@functools.lru_cache(maxsize=1)
def _load() -> str:
    return BOARDS_FILE.read_text()


def load_boards() -> dict:
    """boards.json: ``{"boards": {name: spec}, "runtimes", "calibration", "other_network_rows", ...}`` (a fresh copy)."""
    return json.loads(_load())


def board_names(data: dict | None = None) -> list[str]:
    """The board names ``--board`` accepts, in file order."""
    return list((data or load_boards())["boards"])


def board_spec(name: str, data: dict | None = None) -> dict:
    """One board: ``{"name", "mcu", "core", "clock_mhz", "ram_kb", "flash_kb", ...}``.

    Raises:
        ConfigError: an unknown board, with the known ones.
    """
    data = data or load_boards()
    try:
        return data["boards"][name.lower()]
    except KeyError:
        raise ConfigError(f"unknown board {name!r}; choose from {', '.join(board_names(data))}") from None


def fit(spec: dict, *, arena_bytes: int, model_bytes: int, n_ops: int, data: dict | None = None) -> dict:
    """Whether a model fits a board's RAM and flash.

    Args:
        spec: from :func:`board_spec`.
        arena_bytes: the tensor arena to reserve (the recommended one, not the host's measurement).
        model_bytes: the ``.tflite`` file (it stays in flash as a ``const`` array).
        n_ops: distinct op kinds (each brings its kernel code).

    Returns:
        ``{"ram_need_kb", "ram_kb", "fits_ram", "flash_need_kb", "flash_kb", "fits_flash", "fits"}``
        (KB = 1024 bytes).
    """
    data = data or load_boards()
    ram = arena_bytes / 1024 + data["ram_overhead_kb"]["value"]
    code = data["flash_code_kb"]
    flash = model_bytes / 1024 + code["base"] + code["per_op"] * n_ops
    fits_ram, fits_flash = ram <= spec["ram_kb"], flash <= spec["flash_kb"]
    return {"ram_need_kb": round(ram, 1), "ram_kb": spec["ram_kb"], "fits_ram": fits_ram,
            "flash_need_kb": round(flash, 1), "flash_kb": spec["flash_kb"], "fits_flash": fits_flash,
            "fits": fits_ram and fits_flash}
