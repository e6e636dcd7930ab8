"""What the CPU is: model name, feature flags and clock, from ``/proc/cpuinfo`` (Linux).

Shared by the training precision policy (AMX / AVX512-BF16 detection), export's int8 targets and
the benchmark fingerprint and advice; empty results elsewhere rather than errors.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

# Flags under which u8 x s8 products accumulate in int32 without int16 saturation (x86
# VNNI: vpdpbusd; AMX), and Arm's int8 dot products; used by export's --target auto and the
# bench's int8 advice alike.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
ARM_DOT_FLAGS = frozenset({"asimddp", "i8mm"})
X86_ARCHS = ("x86_64", "amd64", "i686", "i386", "x86")  # platform.machine() names, lower case
ARM_ARCHS = ("aarch64", "arm64", "armv8l", "armv8b")


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


def machine_stamp(cpu: str | None = None, when: str | None = None) -> str:
    """The line a plot names its machine and date with: ``"AMD EPYC 9R14 (2026-12-06)"``.

    Args:
        cpu: the CPU model name; None means this machine's (``cpu_info().model``, else the
            ``platform.machine()`` architecture).
        when: an ISO date or timestamp (only its first 10 characters, the date, are used); None
            means today (UTC).

    Returns:
        ``"<cpu> (<YYYY-MM-DD>)"``.
    """
    import datetime
    import platform

    name = cpu or cpu_info().model or platform.machine() or "unknown CPU"
    day = (when or datetime.datetime.now(datetime.timezone.utc).isoformat())[:10]
    return f"{name} ({day})"
