"""Precision policy: which Keras mixed-precision policy to train under.

``auto`` picks ``mixed_float16`` on a CUDA GPU, ``mixed_bfloat16`` on a CPU with AMX
or AVX512-BF16 (about 2x faster than float32 on the development machine), and
``float32`` otherwise. Export always rebuilds the model under float32 (a bf16 graph
does not convert to TFLite), see :func:`edgesmith.train.loop.train`.
"""
from __future__ import annotations

from edgesmith.core.cpuinfo import cpu_info
from edgesmith.core.errors import ConfigError

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def cpu_flags() -> set[str]:
    """CPU feature flags from ``/proc/cpuinfo`` (empty where unavailable)."""
    return set(cpu_info().flags)


def resolve_policy(precision: str, *, gpus: int, flags: set[str] | None = None) -> str:
    """Keras policy name for ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``).

    Args:
        gpus: number of visible CUDA GPUs.
        flags: CPU flags (default: read from ``/proc/cpuinfo``).

    Raises:
        ConfigError: unknown precision.
    """
    if precision in PRECISIONS:
        return PRECISIONS[precision]
    if precision != "auto":
        raise ConfigError(f"unknown precision {precision!r}; choose auto, {', '.join(PRECISIONS)}")
    if gpus:
        return "mixed_float16"
    flags = cpu_flags() if flags is None else flags
    if {"amx_bf16", "avx512_bf16"} & flags:
        return "mixed_bfloat16"
    return "float32"
