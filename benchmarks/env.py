"""Environment fingerprint: where a benchmark's figures were measured. No TensorFlow import."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess

from edgesmith.core.cpuinfo import cpu_info
from edgesmith.core.rundir import package_versions
from edgesmith.runtime import default_threads

# ISA extensions that change inference speed (x86 SIMD/VNNI/AMX, Arm NEON dot-product/SVE).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
             "asimd", "asimddp", "asimdhp", "sve", "sve2", "i8mm", "bf16")


def gpu_info() -> list[dict]:
    """NVIDIA GPUs as reported by ``nvidia-smi`` (name, driver, memory MiB); [] when none.

    Uses ``nvidia-smi --query-gpu`` only: no CUDA library is loaded into this process.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.strip().splitlines() if out.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1],
                         "memory_mib": int(parts[2]) if parts[2].isdigit() else None})
    return gpus


def environment() -> dict:
    """Fingerprint of the machine and software a benchmark ran on.

    Returns:
        ``cpu`` (model name), ``isa`` (the :data:`ISA_FLAGS` the CPU has), ``cores`` (usable
        by this process), ``cpu_count`` (logical CPUs of the machine), ``load_avg`` (1-minute
        load average when the fingerprint was taken: other processes sharing the cores; a
        benchmark adds ``load_avg_start`` and takes this one at its end), ``os``, ``python``,
        ``versions`` (packages that shape results), ``gpus`` (list, possibly empty).
    """
    info = cpu_info()
    model, flags = info.model, set(info.flags)
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {"cpu": model or platform.processor() or platform.machine(), "arch": platform.machine(),
            "isa": [f for f in ISA_FLAGS if f in flags], "cores": default_threads(),
            "cpu_count": os.cpu_count(), "load_avg": load, "os": platform.platform(),
            "python": platform.python_version(), "versions": package_versions(), "gpus": gpu_info()}
