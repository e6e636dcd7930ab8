"""What the CPU is: model name, feature flags and clock, from ``/proc/cpuinfo`` (Linux).

Shared by the training precision policy (AMX / AVX512-BF16 detection) and the benchmark
fingerprint; empty results elsewhere rather than errors.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CpuInfo:
    """``model`` name (or None), ISA ``flags`` (x86 ``flags`` / Arm ``Features``), ``mhz`` of the first core."""

    model: str | None = None
    flags: frozenset[str] = field(default_factory=frozenset)
    mhz: float | None = None


@functools.lru_cache(maxsize=1)
def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """Parse ``path`` once per process; a missing or unreadable file gives an empty CpuInfo."""
    model, flags, mhz = None, frozenset(), None
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
                elif key == "cpu MHz" and mhz is None:
                    try:
                        mhz = float(value)
                    except ValueError:
                        pass
    except OSError:
        pass
    return CpuInfo(model, flags, mhz)
