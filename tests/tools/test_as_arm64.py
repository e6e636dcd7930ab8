"""tools/as_arm64.sh: a command runs edgesmith on an emulated Arm core, whose int8 kernels are exact.

The pair sums that AVX2's u8 x s8 kernel saturates at 32767 (tests/tools/test_as_avx2.py) come
out exact from ONNX Runtime's Arm kernels, with dotprod (Cortex-A76: sdot/udot) and without it
(Cortex-A72: widening NEON multiplies): the reason U8S8 needs no special form on Arm.

Opt-in: the tool's first run downloads about 450 MB (Debian's arm64 Python, aarch64 wheels), which
CI does not, so these tests skip until `tools/as_arm64.sh true` has built that cache.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "as_arm64.sh"
CACHE = Path(os.environ.get("EDGESMITH_ARM64", Path.home() / ".cache" / "edgesmith" / "arm64"))


def _usable() -> bool:
    if platform.machine() != "x86_64" or os.geteuid() != 0:
        return False
    if any(shutil.which(t) is None for t in ("qemu-aarch64", "unshare")) or not (CACHE / "ready").exists():
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _usable(), reason="opt-in: needs root on x86_64, qemu-aarch64, unshare, "
                                                      "and the cache that `tools/as_arm64.sh true` builds")

K = 64
_PROBE = """
import platform, subprocess, sys
import numpy as np, onnxruntime as ort
from edgesmith.core.cpuinfo import cpu_info
from edgesmith.export.targets import detect_target

s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
k = s.get_inputs()[0].shape[1]
y = int(s.run(None, {"A": np.full((1, k), 255, np.uint8)})[0][0, 0])
print(platform.machine(), y, detect_target(), "asimddp" in cpu_info().flags)
if len(sys.argv) == 2:  # a child started through sys.executable, as the bench starts its workers
    sys.exit(subprocess.run([sys.executable, *sys.orig_argv[1:], "child"]).returncode)
"""


def _matmul_integer(path: Path) -> None:
    """A (1, K) uint8 x (K, 1) int8 -> int32 MatMulInteger whose weights are all 127."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    b = numpy_helper.from_array(np.full((K, 1), 127, np.int8), "B")
    g = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "g",
                          [helper.make_tensor_value_info("A", TensorProto.UINT8, [1, K])],
                          [helper.make_tensor_value_info("Y", TensorProto.INT32, [1, 1])], [b])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.mark.parametrize("cpu,dotprod", [("a72", False), ("a76", True)])
def test_arm_int8_kernels_do_not_saturate(tmp_path, cpu, dotprod):
    pytest.importorskip("onnx", reason="the probe model is built with onnx (pip install 'edgesmith[train]')")
    model, probe = tmp_path / "mm.onnx", tmp_path / "probe.py"
    _matmul_integer(model)
    probe.write_text(_PROBE)
    r = subprocess.run([str(TOOL), "--cpu", cpu, "python", str(probe), str(model)], capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    exact = 255 * 127 * K
    assert r.stdout.split("\n")[:2] == [f"aarch64 {exact} arm64 {dotprod}"] * 2, r.stdout
    assert exact != (K // 2) * 32767  # what an AVX2 machine's U8S8 kernel returns


def test_a_failing_command_keeps_its_exit_status():
    r = subprocess.run([str(TOOL), "python", "-c", "import platform, sys; print(platform.machine()); sys.exit(3)"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert (r.returncode, r.stdout) == (3, "aarch64\n")
