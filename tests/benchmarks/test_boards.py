"""Microcontroller boards: the data file, fit, MAC counts and the latency estimate against published rows."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from edgesmith.benchmarks.board_report import board_report
from edgesmith.benchmarks.boards import board_names, board_spec, fit, load_boards
from edgesmith.benchmarks.mcu_estimate import (calibration_points, count_macs, cycles_per_mac, estimate_latency,
                                               fit_factors, leave_one_out, read_macs)
from edgesmith.core.errors import ConfigError, RunDirError

from conftest import FIXTURE_MODELS

ROOT = Path(__file__).resolve().parents[2]


def test_the_boards_are_there_with_their_numbers():
    data = load_boards()
    for name in ("nucleo-l4r5zi", "ek-ra6m4", "nrf5340-dk", "nucleo-u575zi-q", "nucleo-h7a3zi-q", "disco-f746ng",
                 "ek-ra8d1", "nano33ble", "pico", "esp32-s3", "esp32", "esp32-c3"):
        assert name in board_names(data)
    specs = {n: board_spec(n) for n in ("nano33ble", "PICO", "esp32-s3")}  # any case
    assert [(s["core"], s["clock_mhz"], s["ram_kb"], s["flash_kb"]) for s in specs.values()] == [
        ("cortex-m4f", 64, 256, 1024), ("cortex-m0plus", 133, 264, 2048), ("xtensa-lx7", 240, 512, 8192)]
    for row in data["calibration"]["rows"] + data["other_network_rows"]["rows"]:
        assert row["board"] in data["boards"] and row["runtime"] in data["runtimes"]


def test_an_unknown_board_is_named_with_the_choices():
    with pytest.raises(ConfigError, match=r"unknown board 'uno'; choose from nucleo-l4r5zi, .*pico"):
        board_spec("uno")


def test_a_board_with_its_own_published_row_gets_it_back():
    """ResNet-8 (12.5 M MACs) on the boards of the published TFLite Micro rows gives back their latency."""
    for board, ms in (("nucleo-l4r5zi", 704.23), ("ek-ra6m4", 246.18), ("ek-ra8d1", 8.48)):
        est = estimate_latency(12_500_000, board)
        assert est["basis"] == "published" and est["ms"] == pytest.approx(ms, rel=1e-3)
        assert est["low_ms"] < ms < est["high_ms"] and est["points"][0].startswith("MLPerf Tiny v")
    assert estimate_latency(12_500_000, "nucleo-l4r5zi", "x-cube-ai")["ms"] == pytest.approx(165.67, rel=1e-3)


def test_the_fit_recovers_core_and_engine_factors_and_predicts_an_unseen_pair():
    """Rows made from known factors (cycles/MAC = core x engine): the fit gives back every pair, also one with
    no row of its own; a core linked to no engine of the request gets no figure."""
    core = {"cortex-m4f": 2.0, "cortex-m33": 1.5, "cortex-m7": 0.8}
    engine = {"a": 3.0, "b": 1.0, "c": 1.2}
    seen = [("cortex-m4f", "a"), ("cortex-m33", "a"), ("cortex-m4f", "b"), ("cortex-m33", "b"), ("cortex-m7", "b")]
    points = [{"core": c, "runtime": r, "cycles_per_mac": core[c] * engine[r]} for c, r in seen]
    points.append({"core": "cortex-m0plus", "runtime": "c", "cycles_per_mac": 9.0})  # linked to nothing else
    f = fit_factors(points)
    for c, r in [*seen, ("cortex-m7", "a")]:  # (m7, a) has no row
        assert cycles_per_mac(c, r, points=points)["cycles_per_mac"] == pytest.approx(core[c] * engine[r])
    assert cycles_per_mac("cortex-m7", "a", points=points)["basis"] == "model"
    assert cycles_per_mac("cortex-m0plus", "a", points=points) is None
    assert f["n_core"] == {"cortex-m0plus": 1, "cortex-m33": 2, "cortex-m4f": 2, "cortex-m7": 1}


def test_boards_without_their_own_row_take_the_fit_with_a_band_that_says_how_much_backs_it():
    nano = estimate_latency(12_500_000, "nano33ble")  # Cortex-M4F, 9 rows; TFLM, 3 rows
    assert nano["basis"] == "model" and nano["band"] == 0.30
    l4 = calibration_points()[0]
    assert l4["board"] == "nucleo-l4r5zi" and l4["runtime"] == "tflm-cmsis-nn"
    # between the two TFLM Cortex-M4F/M33 rows' implied cycles/MAC, at 64 MHz
    assert 3.9 < nano["cycles_per_mac"] < l4["cycles_per_mac"]
    assert nano["ms"] == pytest.approx(12_500_000 * nano["cycles_per_mac"] / 64e3, rel=1e-3)
    pico = estimate_latency(12_500_000, "pico")  # Cortex-M0+: one published row (Bosch HALE on a NUCLEO-G0B1RE)
    assert pico["basis"] == "model" and pico["band"] == 1.0 and pico["points"][0] == "1 cortex-m0plus row"
    esp = estimate_latency(12_500_000, "esp32-s3")  # no ResNet-8 row: Espressif's person-detection figure
    assert esp["basis"] == "other network" and esp["band"] == 1.0 and "ESP-NN" in esp["why"]
    assert esp["cycles_per_mac"] == pytest.approx(240e3 * 54 / 7_157_888, abs=1e-3)
    assert estimate_latency(12_500_000, "esp32-s3", "x-cube-ai")["ms"] is None  # nothing says how fast that is


def test_leave_one_out_against_the_published_rows():
    """Each of the 23 published rows predicted by the fit over the other 22: the figures docs/mcu.md states."""
    rows = {(r["board"], r["runtime"]): r for r in leave_one_out()}
    assert len(rows) == len(calibration_points()) == 23
    checked = {k: r["error"] for k, r in rows.items() if r["how"] == "model"}
    misses = {k: e for k, e in checked.items() if abs(e) > 0.30}
    assert len(checked) == 21 and misses == pytest.approx({("ek-ra6m4", "tflm-cmsis-nn"): 0.383}, abs=0.002)
    assert checked["nucleo-l4r5zi", "tflm-cmsis-nn"] == pytest.approx(-0.277, abs=0.002)
    unchecked = {k for k, r in rows.items() if r["how"] == "none"}
    assert unchecked == {("ek-ra8d1", "tflm-cmsis-nn"), ("nucleo-g0b1re", "bosch-hale")}  # their core: no other row
    assert all(r["predicted_ms"] is None and r["n_core"] == 0 for k, r in rows.items() if k in unchecked)


def test_the_docs_table_is_the_estimators_output():
    """docs/mcu.md's leave-one-out table is tools/mcu_loo_table.py's output, line for line."""
    tool = runpy.run_path(str(ROOT / "tools" / "mcu_loo_table.py"))
    assert tool["table"]() in (ROOT / "docs" / "mcu.md").read_text()


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
