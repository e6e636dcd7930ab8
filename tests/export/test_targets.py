"""Deployment targets: the int8 ONNX form chosen per target and per CPU (ISA flags injected), and the manifest."""
import platform
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import load_manifest
from edgesmith.export import ExportConfig
from edgesmith.export.targets import (ARM_DOT_FLAGS, VNNI_FLAGS, Machine, detect_target, onnx_forms,
                                      resolve_targets)

AVX2 = Machine("x86_64", frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"}), "AMD EPYC (Zen 3)")
AVX512_NO_VNNI = Machine("x86_64", AVX2.flags | {"avx512f", "avx512bw", "avx512vl"})
VNNI = Machine("x86_64", AVX2.flags | {"avx512f", "avx512bw", "avx512_vnni"})
AVX_VNNI = Machine("x86_64", AVX2.flags | {"avx_vnni"})
AMX = Machine("x86_64", AVX2.flags | {"amx_tile", "amx_int8"})
ARM_DOT = Machine("aarch64", frozenset({"fp", "asimd", "asimddp", "i8mm"}))
ARM_PLAIN = Machine("aarch64", frozenset({"fp", "asimd"}))


@pytest.mark.parametrize("machine, target, preset", [
    (AVX2, "x86-avx2", "u8u8"), (AVX512_NO_VNNI, "x86-avx2", "u8u8"), (VNNI, "x86-vnni", "u8s8"),
    (AVX_VNNI, "x86-vnni", "u8s8"), (AMX, "x86-vnni", "u8s8"), (ARM_DOT, "arm64", "s8s8"),
    (ARM_PLAIN, "arm64", "s8s8"), (Machine("riscv64", frozenset()), "generic", "s8s8")])
def test_auto_picks_the_exact_fast_form_for_the_cpu(machine, target, preset):
    assert detect_target(machine) == target
    assert onnx_forms(("auto",), machine) == [(preset, (target,))]
    plan = {p.name: p for p in ExportConfig().plan(machine)}
    assert plan["onnx_int8"].onnx_preset == preset and plan["onnx_int8"].file == "model_int8.onnx"
    assert plan["onnx_int8"].targets == (target,) and plan["tflite_int8"].targets == (target,)


def test_several_targets_give_one_file_per_distinct_form():
    config = ExportConfig(targets=("x86-avx2", "x86-vnni", "arm64", "generic", "tensorrt"))
    int8 = [(p.name, p.file, p.onnx_preset, p.targets) for p in config.plan(VNNI) if p.variant == "int8"
            and p.format == "onnx"]
    assert int8 == [("onnx_int8", "model_int8.onnx", "u8u8", ("x86-avx2",)),
                    ("onnx_int8_u8s8", "model_int8_u8s8.onnx", "u8s8", ("x86-vnni",)),
                    ("onnx_int8_s8s8", "model_int8_s8s8.onnx", "s8s8", ("arm64", "generic")),
                    ("onnx_int8_tensorrt", "model_int8_tensorrt.onnx", "tensorrt", ("tensorrt",))]
    names = [p.name for p in config.plan(VNNI)]
    assert len(names) == len(set(names))
    # auto and the target it resolves to are one form, one file
    assert resolve_targets(("auto", "x86-vnni"), VNNI) == ("x86-vnni",)
    assert [p.name for p in ExportConfig(targets=("auto", "x86-vnni")).plan(VNNI)] == [
        "tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"]


def test_explicit_preset_overrides_the_targets_and_bad_names_are_refused():
    plan = ExportConfig(targets=("x86-avx2", "arm64"), onnx_preset="u8s8").plan(AVX2)
    assert [(p.name, p.onnx_preset) for p in plan if p.onnx_preset] == [("onnx_int8", "u8s8")]
    pruned = [p.name for p in ExportConfig(formats=("onnx",), targets=("x86-vnni", "arm64"), prune=0.5).plan(AVX2)]
    assert "pruned_onnx_int8_s8s8" in pruned and "pruned_onnx_int8" in pruned
    with pytest.raises(ConfigError, match="unknown target"):
        ExportConfig(targets=("x86-avx3",))
    with pytest.raises(ConfigError, match="unknown target"):
        ExportConfig(targets=())


def test_export_and_the_bench_read_one_set_of_int8_flags():
    from edgesmith.benchmarks import advice

    assert advice.VNNI_FLAGS is VNNI_FLAGS and advice.ARM_DOT_FLAGS is ARM_DOT_FLAGS


def test_machine_record_keeps_the_int8_relevant_flags():
    rec = Machine("x86_64", frozenset({"avx2", "avx512_vnni", "pni", "sse2"}), "CPU X").record()
    assert rec == {"cpu": "CPU X", "arch": "x86_64", "isa": ["avx2", "avx512_vnni"]}


def test_avx2_preset_writes_7_bit_weights(tmp_path):
    """reduce_range: every int8 weight fits in [-64, 64], so a u8 x s8 pair sum cannot overflow int16."""
    from edgesmith.core.data import synthetic_split
    from edgesmith.export.onnx import quantize_onnx, to_onnx
    from edgesmith.train import build_model

    model = build_model("cnn", (32, 32, 3), 10)
    to_onnx(model, tmp_path / "fp32.onnx")
    calib = synthetic_split("train", 32, seed=3).images
    ranges = {}
    for preset in ("u8s8", "u8s8-7bit"):
        path = quantize_onnx(tmp_path / "fp32.onnx", tmp_path / f"{preset}.onnx", calibration=calib, preset=preset)
        weights = [numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer
                   if i.data_type == onnx.TensorProto.INT8 and i.dims]
        ranges[preset] = max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
    assert ranges["u8s8-7bit"] <= 64 < ranges["u8s8"]


def test_export_records_targets_and_the_cpu_and_stays_within_1_pt(trained_run):
    """The real check on this CPU: the form auto picks here is within 1 pt of float (synthetic data)."""
    manifest = load_manifest(trained_run)
    here = detect_target()
    by = {a["name"]: a for a in manifest["artifacts"]}
    onnx_int8 = by["onnx_int8"]
    assert onnx_int8["targets"] == [here] and onnx_int8["onnx_preset"] == onnx_forms(("auto",))[0][0]
    assert by["tflite_int8"]["targets"] == [here] and "targets" not in by["tflite_fp32"]
    for rec in manifest["artifacts"]:
        assert rec["verified_on"] == Machine.here().record()
    config = manifest["stages"]["export"]["config"]
    assert config["targets"] == ["auto"] and config["resolved_targets"] == [here]
    assert abs(onnx_int8["fidelity"]["accuracy_drop_pts"]) <= 1.0
    assert abs(by["tflite_int8"]["fidelity"]["accuracy_drop_pts"]) <= 1.0


QEMU = shutil.which("qemu-x86_64")
# Runs float and int8 ONNX files on x.npy and saves each output. Under QEMU it first checks the CPU it
# emulates is AVX2-only. numpy 2 moved its CPU feature table to numpy._core; numpy 1.26 keeps numpy.core.
_RUN_ONNX = """
import sys, numpy as np, onnxruntime as ort
try:
    from numpy._core._multiarray_umath import __cpu_features__ as cpu
except ImportError:
    from numpy.core._multiarray_umath import __cpu_features__ as cpu
emulated = sys.argv[1] == "emulated"
assert not emulated or (cpu["AVX2"] and not cpu["AVX512F"]), "not an AVX2-only CPU"
x = np.load(sys.argv[2])
for f in sys.argv[3:]:
    o = ort.SessionOptions(); o.intra_op_num_threads = 1
    s = ort.InferenceSession(f, o, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    np.save(f + "." + sys.argv[1] + ".npy", s.run(None, {i.name: x.astype(np.uint8 if "uint8" in i.type else np.float32)})[0])
"""


def _bright_conv_model(path):
    """A float ONNX model (N, 8, 8, 3) float32 pixels 0-255 -> (N, 10) logits: one 3x3 convolution
    with positive weights, then global average pooling. Quantized, its bright pixels (u8 up to 255)
    meet weights near 127, so pairs of products exceed int16 (2 x 255 x 127 = 64,770)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = rng.uniform(0.3, 1.0, (10, 3, 3, 3)).astype(np.float32) / 100
    g = helper.make_graph(
        [helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("Conv", ["nchw", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["conv"], ["pool"]),
         helper.make_node("Flatten", ["pool"], ["logits"])], "bright",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(10, np.float32), "b")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.skipif(QEMU is None or platform.machine() != "x86_64", reason="needs qemu-user (apt install qemu-user)")
def test_the_avx2_form_computes_the_same_on_an_emulated_avx2_cpu(tmp_path):
    """Under QEMU's Haswell (AVX2 + FMA, no AVX-512, no VNNI; CPUID is emulated, so ONNX Runtime's MLAS
    dispatches its AVX2 kernels), whatever this CPU has: U8S8 saturates and moves the logits away from the
    float model's, while the form `--target x86-avx2` picks (U8U8) stays within rounding of float and
    computes exactly what it computes natively. The reference is the float model, so each assertion holds on
    every host: natively, U8S8 is exact on an int8-dot-product CPU (VNNI, AVX-VNNI, AMX, as /proc/cpuinfo
    says, which tools/as_avx2.sh masks too) and saturates like the emulated Haswell on any other x86."""
    from edgesmith.core.cpuinfo import VNNI_FLAGS, cpu_info
    from edgesmith.export.onnx import quantize_onnx

    _bright_conv_model(tmp_path / "float.onnx")
    rng = np.random.default_rng(1)
    calib = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    x = rng.integers(0, 256, (200, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    (form,) = [p for p, _ in onnx_forms(("x86-avx2",))]
    paths = [quantize_onnx(tmp_path / "float.onnx", tmp_path / f"{p}.onnx", calibration=calib, preset=p)
             for p in (form, "u8s8")]
    files = [tmp_path / "float.onnx", *paths]
    # -I under QEMU: no sitecustomize from PYTHONPATH, so tools/as_avx2.sh cannot move that child out of QEMU
    for how, prefix in (("native", [sys.executable]), ("emulated", [QEMU, "-cpu", "Haswell", sys.executable, "-I"])):
        r = subprocess.run([*prefix, "-c", _RUN_ONNX, how, str(tmp_path / "x.npy"), *map(str, files)],
                           capture_output=True, text=True, timeout=600, check=False)
        assert r.returncode == 0, r.stderr[-2000:]
    out = {(f.stem, how): np.load(f"{f}.{how}.npy") for f in files for how in ("native", "emulated")}
    ref = out["float", "native"]

    def off(stem, how):  # mean relative distance from the float model's logits
        return float(np.abs(out[stem, how] - ref).mean() / np.abs(ref).mean())

    errs = {(stem, how): off(stem, how) for stem, how in out}
    assert errs["float", "emulated"] < 1e-5, errs  # float is float on both
    assert form == "u8u8" and np.array_equal(out[form, "native"], out[form, "emulated"]), errs  # nothing saturates
    assert errs[form, "native"] < 0.01, errs  # int8 rounding only
    assert errs["u8s8", "emulated"] > 0.02, errs  # saturation: the reason --target x86-avx2 does not make U8S8
    if cpu_info().flags & VNNI_FLAGS:
        assert errs["u8s8", "native"] < 0.01, errs  # exact int8 dot products here
    else:
        assert errs["u8s8", "native"] > 0.02, errs  # this CPU saturates as the emulated Haswell does
