"""The Cortex-M target: int8 I/O file, TFLite Micro's ops / arena / outputs, C sources that compile, board estimates."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgesmith.core.errors import BackendUnavailable, ConfigError
from edgesmith.core.rundir import RunDir, load_manifest
from edgesmith.export.config import ExportConfig
from edgesmith.export.micro import RESOLVER_METHODS, check_ops, model_ops

CXX = shutil.which("g++") or shutil.which("clang++")


def test_cortex_m_alone_plans_the_micro_file_instead_of_the_desktop_int8_one():
    alone = [p.name for p in ExportConfig(targets=("cortex-m",), formats=("tflite",)).plan()]
    both = [p.name for p in ExportConfig(targets=("x86-vnni", "cortex-m"), formats=("tflite",)).plan()]
    assert alone == ["tflite_fp32", "tflite_int8_micro"]
    assert both == ["tflite_fp32", "tflite_int8", "tflite_int8_micro"]
    assert [p for p in ExportConfig(targets=("cortex-m",)).plan() if p.variant == "int8"] == []  # no ONNX int8 form


def test_an_op_tflite_micro_lacks_is_named_in_one_line():
    ops = [{"op": "CONV_2D", "version": 3, "count": 1, "resolver": "AddConv2D"},
           {"op": "CUSTOM:FlexErf", "version": 1, "count": 2, "resolver": None}]
    with pytest.raises(ConfigError, match=r"model_int8_micro.tflite uses op\(s\) TFLite Micro does not implement: "
                                          r"CUSTOM:FlexErf \(v1\)") as e:
        check_ops(ops, "model_int8_micro.tflite")
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def micro_run(trained_run, tmp_path_factory):
    """The shared synthetic cnn run, exported for Cortex-M only (60 verification images)."""
    pytest.importorskip("tflite_micro", reason="the [mcu] extra (tflite-micro) is not installed")
    from edgesmith.export import export

    dest = tmp_path_factory.mktemp("micro") / "run"
    shutil.copytree(trained_run.root, dest, ignore=shutil.ignore_patterns("artifacts", "bench"))
    records = export(dest, ExportConfig(targets=("cortex-m",), formats=("tflite",), verify_size=60,
                                        calibration_size=64))
    return dest, {r["name"]: r for r in records}


def test_export_writes_an_int8_io_file_checked_under_tflite_micro(micro_run):
    run, by = micro_run
    assert set(by) == {"tflite_fp32", "tflite_int8_micro"}
    rec = by["tflite_int8_micro"]
    assert [a["name"] for a in load_manifest(RunDir(run))["artifacts"] if "micro" in a] == ["tflite_int8_micro"]
    micro = rec["micro"]
    assert micro["io"]["input"]["dtype"] == micro["io"]["output"]["dtype"] == "int8"
    assert rec["input"]["dtype"] == "int8"  # LiteRT reads the same file the same way
    # raw pixel p -> p + zero_point at scale 1 when the calibration images span 0-255 (the synthetic ones do not
    # always): whatever it is, the recorded scale / zero point are those of the file
    assert micro["io"]["input"]["scale"] == pytest.approx(rec["input"]["quantization"]["scale"])
    assert micro["io"]["input"]["zero_point"] == rec["input"]["quantization"]["zero_point"]
    v = micro["verify"]
    assert v["n"] == v["exact"]["n"] == 60 and v["exact"]["top1_agreement"] >= 0.99
    assert v["top1"] == pytest.approx(v["litert_top1"], abs=0.05) and v["top1_agreement"] >= 0.9
    assert v["exact"]["max_lsb"] <= 3
    assert {o["op"] for o in micro["ops"]} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert all(o["resolver"] == RESOLVER_METHODS[o["op"]] for o in micro["ops"])
    assert micro["arena"]["recommended_bytes"] > micro["arena"]["bytes"] > 0
    for rel in micro["c_sources"]:
        assert (run / rel).is_file(), rel


def test_the_export_gate_is_litert_reference_kernels_not_xnnpack(micro_run, monkeypatch):
    """XNNPACK rounds differently and flips near-ties: a disagreement there alone is recorded, not fatal;
    a disagreement with the reference kernels (what TFLite Micro mirrors) fails the file."""
    import edgesmith.export.micro as micro_mod
    from edgesmith.core.errors import ParityError

    run, by = micro_run
    path = run / by["tflite_int8_micro"]["file"]
    images = np.random.default_rng(0).integers(0, 256, (20, *by["tflite_int8_micro"]["input"]["shape"][1:]),
                                               dtype=np.uint8)
    labels = np.zeros(20, np.int64)
    arena = by["tflite_int8_micro"]["micro"]["arena"]["bytes"]
    real = micro_mod.run_litert

    def shifted(kind_shifted):
        def run_litert(p, x, *, reference):
            out = real(p, x, reference=reference)
            return np.roll(out, 1, axis=1) if reference == kind_shifted else out  # every top-1 moves
        return run_litert

    monkeypatch.setattr(micro_mod, "run_litert", shifted(False))  # XNNPACK disagrees everywhere
    v = micro_mod.verify_micro(path, images, labels, arena=arena)
    assert v["top1_agreement"] < 0.5 and v["exact"]["top1_agreement"] >= 0.99
    monkeypatch.setattr(micro_mod, "run_litert", shifted(True))  # the reference kernels disagree
    with pytest.raises(ParityError, match="reference kernels on only"):
        micro_mod.verify_micro(path, images, labels, arena=arena)


def test_the_recorded_arena_is_the_smallest_that_runs(micro_run):
    from edgesmith.export.micro import _runs_in

    run, by = micro_run
    flatbuffer = (run / by["tflite_int8_micro"]["file"]).read_bytes()
    arena = by["tflite_int8_micro"]["micro"]["arena"]["bytes"]
    x = np.zeros(by["tflite_int8_micro"]["micro"]["io"]["input"]["shape"], np.int8)
    assert _runs_in(flatbuffer, arena, x)
    assert not _runs_in(flatbuffer, arena - 64, x)


_STUB = """#pragma once
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
template <unsigned int N> class MicroMutableOpResolver {
 public:
%s
};
}  // namespace tflite
"""
_USE = """#include <cstdint>
#include "model_data.h"
#include "model_ops.h"
using namespace edgesmith_model;
static_assert(kNumClasses > 0 && kTensorArenaSize % 16 == 0, "constants");
int run() {
  OpResolver resolver;
  if (RegisterOps(resolver) != kTfLiteOk) return 1;
  const int8_t first = static_cast<int8_t>(200 / kInputScale + kInputZeroPoint);
  return (reinterpret_cast<std::uintptr_t>(kModelData) % 16) + kModelDataLen + first + kLabels[0][0];
}
"""


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++ or clang++)")
def test_the_generated_cpp_compiles(micro_run, tmp_path):
    """Against a stub of the one TFLite Micro header model_ops.h includes (the TFLM tree is not here): every
    Add* method it calls must exist in TFLite Micro's MicroMutableOpResolver (RESOLVER_METHODS)."""
    run, by = micro_run
    src = run / Path(by["tflite_int8_micro"]["micro"]["c_sources"][0]).parent
    stub = tmp_path / "tensorflow/lite/micro/micro_mutable_op_resolver.h"
    stub.parent.mkdir(parents=True)
    stub.write_text(_STUB % "\n".join(f"  TfLiteStatus {m}() {{ return kTfLiteOk; }}"
                                      for m in sorted(set(RESOLVER_METHODS.values()))))
    (tmp_path / "use.cc").write_text(_USE)
    r = subprocess.run([CXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", f"-I{tmp_path}", f"-I{src}",
                        str(src / "model_data.cc"), str(tmp_path / "use.cc")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    header = (src / "model_data.h").read_text()
    assert f"kTensorArenaSize = {by['tflite_int8_micro']['micro']['arena']['recommended_bytes']};" in header
    assert "alignas(16) const unsigned char kModelData[]" in (src / "model_data.cc").read_text()


def test_model_ops_reads_every_op_and_version(micro_run):
    run, by = micro_run
    ops = model_ops((run / by["tflite_int8_micro"]["file"]).read_bytes())
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(run / by["tflite_int8_micro"]["file"]))
    assert sum(o["count"] for o in ops) == len(interp._get_ops_details())


def test_bench_board_prints_fit_and_an_estimate(micro_run):
    from edgesmith.cli import app

    run, _ = micro_run
    r = CliRunner().invoke(app, ["bench", str(run), "--board", "nano33ble", "--board", "pico"])
    assert r.exit_code == 0, r.output
    assert "ESTIMATE" in r.output and "nano33ble" in r.output and "pico" in r.output and "TFLM top-1" in r.output
    assert "model" in r.output  # neither board has a published row: the core x engine fit
    assert not (run / "bench").exists()  # nothing measured here
    r = CliRunner().invoke(app, ["bench", str(run), "--board", "nucleo-l4r5zi,esp32-s3", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout[r.stdout.index("{"):])["boards"]  # the table goes to stderr with --json
    assert [(b["board"], b["latency"]["basis"]) for b in rows] == [("nucleo-l4r5zi", "published"),
                                                                     ("esp32-s3", "other network")]
    assert rows[0]["macs"] > 0 and rows[0]["fits"] in (True, False)


def test_without_the_mcu_extra_export_says_which_to_install(trained_run, tmp_path, monkeypatch):
    from edgesmith.export import export

    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailable, match=r"edgesmith\[mcu\]"):
        export(trained_run.root, ExportConfig(targets=("cortex-m",), formats=("tflite",)))


def test_cli_cortex_m_alone_exports_tflite_only(tiny_run, monkeypatch):
    import importlib

    from edgesmith.cli import app

    cmd = importlib.import_module("edgesmith.cli.export_cmd")
    seen = []
    monkeypatch.setattr(cmd, "run_export", lambda run_dir, config, **kw: seen.append(config))
    for args, formats in ((["--target", "cortex-m"], ("tflite",)), (["--target", "auto,cortex-m"], ("tflite", "onnx")),
                          (["--target", "cortex-m", "--formats", "tflite,onnx"], ("tflite", "onnx"))):
        r = CliRunner().invoke(app, ["export", str(tiny_run.root), *args])
        assert r.exit_code == 0, r.output
        assert seen[-1].formats == formats, args
    assert seen[0].targets == ("cortex-m",)


def test_bench_tflm_cell_measures_accuracy_and_reports_no_latency(micro_run):
    import json

    from edgesmith.cli import app

    run, _ = micro_run
    out = Path(run).parent / "bench-tflm"
    r = CliRunner().invoke(app, ["bench", str(run), "--runtime", "tflm,litert-cpu", "--threads", "1", "--batch", "1",
                                 "--runs", "10", "--warmup", "1", "--seconds", "0.2", "--rounds", "2",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "results.json").read_text())
    acc = {(a["artifact"], a["runtime"]): a for a in report["accuracy"]}
    tflm, litert = acc[("tflite_int8_micro", "tflm")], acc[("tflite_int8_micro", "litert-cpu")]
    assert tflm["n_test"] == litert["n_test"] and abs(tflm["top1"] - litert["top1"]) <= 0.02
    assert ("tflite_fp32", "tflm") not in acc  # the float file is no Cortex-M file
    assert all(row["runtime"] != "tflm" for row in report["results"])  # no latency: x86 time is no device time
    assert "host, not device" in (out / "report.md").read_text()


def test_without_the_mcu_extra_the_tflm_cell_names_the_extra(monkeypatch):
    from edgesmith.benchmarks import runtimes

    monkeypatch.setattr(runtimes, "_installed", lambda module: module != "tflite_micro")
    status = runtimes.detect("tflm")
    assert not status.usable and "edgesmith[mcu]" in status.detail


def test_optimize_board_picks_the_most_accurate_cortex_m_file_that_fits(trained_run, tmp_path):
    pytest.importorskip("tflite_micro", reason="the [mcu] extra (tflite-micro) is not installed")
    from dataclasses import replace

    from edgesmith.optimize import OptimizeConfig, optimize
    from edgesmith.optimize.report import markdown
    from edgesmith.optimize.search import board_pick

    config = OptimizeConfig(board="nano33ble", calibration_size=16, verify_size=60, budget_s=600)
    out = tmp_path / "opt"
    result = optimize(trained_run.root, out, config, limit_test=100, plot=False)
    rows = result["board"]["rows"]
    assert sorted(r["artifact"] for r in rows) == ["tflite_int8_micro", "tflite_int8_micro_calib64"]
    assert all(r["top1_n"] == 100 for r in rows)  # the bench's TFLite Micro top-1 on the test split
    eligible = [r for r in rows if r["eligible"]]
    rec = result["recommendation"]
    if eligible:
        assert rec["top1"] == max(r["top1"] for r in eligible) and rec["artifact"] in {r["artifact"] for r in eligible}
        assert rec["export_command"].startswith(f"edgesmith export {trained_run.root}")
    assert "ESTIMATE" in (out / "optimize.md").read_text()
    # an estimate cap no file meets: nothing is recommended, and each row says why
    manifest = load_manifest(RunDir(out))
    capped = board_pick(out, replace(config, max_latency_ms=0.001), {}, manifest["artifacts"])
    assert capped["recommendation"] == {} and all("> 0.001 ms" in r["why_not"] or "fit" in r["why_not"]
                                                  for r in capped["rows"])
    assert "No Cortex-M file fits" in markdown({**result, "board": capped, "recommendation": {}})
