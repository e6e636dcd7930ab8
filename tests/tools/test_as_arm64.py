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

@pytest.mark.parametrize("cpu,dotprod", [("a72", False), ("a76", True)])
def test_arm_int8_kernels_do_not_saturate(cpu, dotprod, int8_probe):
    probe = int8_probe('print(platform.machine(), y, detect_target(), "asimddp" in cpu_info().flags)')
    r = subprocess.run([str(TOOL), "--cpu", cpu, "python", *probe], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:2] == [f"aarch64 {int8_probe.exact} arm64 {dotprod}"] * 2, r.stdout
    assert int8_probe.exact != int8_probe.saturated  # what an AVX2 machine's U8S8 kernel returns


def test_a_failing_command_keeps_its_exit_status():
    r = subprocess.run([str(TOOL), "python", "-c", "import platform, sys; print(platform.machine()); sys.exit(3)"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert (r.returncode, r.stdout) == (3, "aarch64\n")
