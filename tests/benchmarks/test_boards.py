"""Microcontroller boards: the data file, fit, MAC counts and the latency estimate against published rows."""
from __future__ import annotations

import pytest

from edgesmith.benchmarks.board_report import board_report
from edgesmith.benchmarks.boards import board_names, board_spec, fit, load_boards
from edgesmith.benchmarks.mcu_estimate import (calibration_points, count_macs, estimate_latency, leave_one_out,
                                               read_macs)
from edgesmith.core.errors import ConfigError, RunDirError

from conftest import FIXTURE_MODELS


def test_every_board_the_issue_names_is_there_with_its_numbers():
    data = load_boards()
    for name in ("nucleo-l4r5zi", "ek-ra6m4", "nrf5340-dk", "nucleo-u575zi-q", "nucleo-h7a3zi-q", "disco-f746ng",
                 "ek-ra8d1", "nano33ble", "pico", "esp32-s3"):
        assert name in board_names(data)
    specs = {n: board_spec(n) for n in ("nano33ble", "PICO", "esp32-s3")}  # any case
    assert [(s["core"], s["clock_mhz"], s["ram_kb"], s["flash_kb"]) for s in specs.values()] == [
        ("cortex-m4f", 64, 256, 1024), ("cortex-m0plus", 133, 264, 2048), ("xtensa-lx7", 240, 512, 8192)]
    for row in data["calibration"]["rows"]:
        assert row["board"] in data["boards"] and row["runtime"] in data["runtimes"]


def test_an_unknown_board_is_named_with_the_choices():
    with pytest.raises(ConfigError, match=r"unknown board 'uno'; choose from nucleo-l4r5zi, .*pico"):
        board_spec("uno")


def test_a_calibrated_board_reproduces_its_published_row():
    """ResNet-8 (12.5 M MACs) on the boards of the published TFLite Micro rows gives back their latency."""
    for board, ms in (("nucleo-l4r5zi", 704), ("ek-ra6m4", 246), ("ek-ra8d1", 8.5)):
        est = estimate_latency(12_500_000, board)
        assert est["basis"] == "calibrated" and est["ms"] == pytest.approx(ms, rel=1e-3)
        assert est["low_ms"] < ms < est["high_ms"]
    nano = estimate_latency(12_500_000, "nano33ble")  # same core as NUCLEO-L4R5ZI at 64 instead of 120 MHz
    assert nano["ms"] == pytest.approx(704 * 120 / 64, rel=1e-3) and nano["points"] == ["nucleo-l4r5zi"]
    pico = estimate_latency(12_500_000, "pico")
    assert pico["basis"] == "assumed" and pico["band"] > nano["band"]


def test_leave_one_out_against_the_published_rows():
    """The figures docs/mcu.md states: each (core, runtime) has a single published row, so a left-out row is
    predicted only through other cores and runtimes ('cross'); none of those lands within 30%."""
    rows = {(r["board"], r["runtime"]): r for r in leave_one_out()}
    assert len(rows) == len(calibration_points())
    cross = {k: r["error"] for k, r in rows.items() if r["how"] == "cross"}
    assert cross == pytest.approx({("nucleo-l4r5zi", "tflm-cmsis-nn"): -0.351, ("ek-ra6m4", "tflm-cmsis-nn"): 0.54,
                                   ("nucleo-l4r5zi", "x-cube-ai"): 0.54, ("nucleo-u575zi-q", "x-cube-ai"): -0.351},
                                  abs=0.002)
    unchecked = {k for k, r in rows.items() if r["how"] == "none"}
    assert unchecked == {("nrf5340-dk", "microtvm-cmsis-nn"), ("nucleo-h7a3zi-q", "x-cube-ai"),
                         ("disco-f746ng", "plumerai"), ("ek-ra8d1", "tflm-cmsis-nn")}
    assert all(r["predicted_ms"] is None for k, r in rows.items() if k in unchecked)


def test_leave_one_out_uses_a_second_row_of_the_same_core_and_runtime():
    data = load_boards()
    data["boards"]["u575-96"] = {**data["boards"]["nucleo-u575zi-q"], "clock_mhz": 96}
    data["calibration"]["rows"].append({"board": "u575-96", "runtime": "x-cube-ai", "latency_ms": 182.3})
    rows = {(r["board"], r["runtime"]): r for r in leave_one_out(data)}
    same = rows["nucleo-u575zi-q", "x-cube-ai"]
    assert same["how"] == "same" and abs(same["error"]) < 0.03


def test_fit_compares_arena_plus_overhead_with_ram_and_model_plus_code_with_flash():
    nano = board_spec("nano33ble")
    small = fit(nano, arena_bytes=60_000, model_bytes=100_000, n_ops=7)
    assert small["fits"] and small["ram_need_kb"] == pytest.approx(60_000 / 1024 + 16, abs=0.1)
    assert small["flash_need_kb"] == pytest.approx(100_000 / 1024 + 60 + 4 * 7, abs=0.1)
    big = fit(nano, arena_bytes=250 * 1024, model_bytes=100_000, n_ops=7)
    assert not big["fits"] and not big["fits_ram"] and big["fits_flash"]
    assert not fit(nano, arena_bytes=1000, model_bytes=1000 * 1024, n_ops=7)["fits_flash"]


def test_macs_are_counted_from_the_graph_shapes():
    """The fixture cnn (tools/make_test_models.py): its conv and dense shapes, read back from LiteRT's own
    tensor details, give the same count."""
    from ai_edge_litert.interpreter import Interpreter

    path = FIXTURE_MODELS / "model_fp32.tflite"
    counted = read_macs(path)
    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: t["shape"] for t in interp.get_tensor_details()}
    expect = 0
    for op in interp._get_ops_details():
        if op["op_name"] == "CONV_2D":
            out, ker = tensors[op["outputs"][0]], tensors[op["inputs"][1]]
            expect += int(out[1] * out[2] * out[3] * ker[1] * ker[2] * ker[3])
        elif op["op_name"] == "FULLY_CONNECTED":
            ker = tensors[op["inputs"][1]]
            expect += int(ker[0] * ker[1])
    assert counted["macs"] == expect > 0
    assert count_macs(path.read_bytes()) == counted


def test_board_report_needs_a_cortex_m_export(tiny_run):
    with pytest.raises(RunDirError, match="--target cortex-m"):
        board_report(tiny_run.root, ["pico"])
    with pytest.raises(ConfigError, match="unknown MCU runtime"):
        board_report(tiny_run.root, ["pico"], runtime="tvm")
