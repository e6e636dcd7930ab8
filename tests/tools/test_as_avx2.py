"""tools/as_avx2.sh: a command sees an AVX2-only CPU, in /proc/cpuinfo and in ONNX Runtime's kernels.

The check of the kernels is numeric, so it holds on every CPU kind: with 255 x 127 pairs, AVX2's
u8 x s8 kernel (vpmaddubsw) saturates each pair sum at 32767, while VNNI / AMX kernels are exact.
A real AVX2-only CPU saturates too, so the masked answer is the same there.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "as_avx2.sh"
NEEDS = ("gdb", "objdump", "unshare", "mount")



def _usable() -> bool:
    if platform.machine() != "x86_64" or os.geteuid() != 0 or any(shutil.which(t) is None for t in NEEDS):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _usable(), reason="as_avx2.sh needs x86_64, root with a mount namespace "
                                                      "(unshare -m) and " + ", ".join(NEEDS))

_SEEN = """flags = sorted(f for f in cpu_info().flags if f.startswith(("avx512", "amx", "avx_vnni")))
print(y, detect_target(), "avx2" in cpu_info().flags, flags)"""


def test_the_command_and_its_child_pythons_see_an_avx2_cpu(tmp_path, int8_probe):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)}  # objdump cache in tmp
    r = subprocess.run([str(TOOL), sys.executable, *int8_probe(_SEEN)], capture_output=True, text=True, timeout=600,
                       check=False, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split("\n")[:2]
    for line in lines:
        assert line == f"{int8_probe.saturated} x86-avx2 True []", r.stdout
    assert int8_probe.saturated != int8_probe.exact


def test_a_failing_command_keeps_its_exit_status(tmp_path):
    r = subprocess.run([str(TOOL), sys.executable, "-c", "import sys; print('out'); sys.exit(3)"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert (r.returncode, r.stdout) == (3, "out\n")
