"""Named benchmark presets: what ``edgesmith bench --preset NAME`` measures, and the CLI's defaults.

=============  ===========================================================================
preset         measures
=============  ===========================================================================
default        what ``edgesmith bench`` does: runtimes auto, threads 1 and every core, batch 1
               and 64, 30 s of interleaved batch-1 timing in 30 rounds
quick          what ``edgesmith pipeline`` runs: the CPU runtimes at 1 thread, batch 1 and 64,
               10 s of timing
int8-speed     the long run behind the int8 latencies of docs/int8.md: the CPU runtimes at 1 thread,
               batch 1 and 64, 2,000 interleaved rounds (at least 2,000 timed batch-1 calls
               per artifact) over 60 s
=============  ===========================================================================

A preset holds :class:`~.suite.BenchConfig` field values; ``"all"`` in ``threads`` stands for
every core this process may use, resolved when the config is built. No TensorFlow here.

Example::

    from edgesmith.benchmarks import bench, bench_config
    report, paths = bench("runs/demo", bench_config("int8-speed", limit_test=2000))
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from edgesmith.core.errors import ConfigError
from edgesmith.runtime import default_threads

from .suite import BenchConfig
from .runtimes import GROUPS, resolve_runtimes

BENCH_PRESETS: dict[str, dict[str, Any]] = {
    "default": {"runtimes": GROUPS["auto"], "threads": (1, "all"), "batches": (1, 64), "warmup": 50,
                "runs": 200, "batch_runs": 30, "seconds": 30.0, "rounds": 30},
    "quick": {"runtimes": GROUPS["cpu"], "threads": (1,), "batches": (1, 64), "warmup": 50,
              "runs": 200, "batch_runs": 30, "seconds": 10.0, "rounds": 30},
    # int8_speed.py (retired) timed 2,000 interleaved rounds of one call per artifact at 1 thread
    "int8-speed": {"runtimes": GROUPS["cpu"], "threads": (1,), "batches": (1, 64), "warmup": 50,
                   "runs": 2000, "batch_runs": 200, "seconds": 60.0, "rounds": 2000},
}
_FIELDS = tuple(f.name for f in fields(BenchConfig))


def parse_threads(text: str) -> tuple[int, ...]:
    """Parse ``--threads``: comma-separated integers and ``all`` (every core), e.g. ``"1,all"`` -> ``(1, 2)``.

    Raises:
        ConfigError: a token that is neither an integer nor ``all``.
    """
    try:
        return tuple(default_threads() if t.strip().lower() == "all" else int(t)
                     for t in str(text).split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"threads takes comma-separated integers or 'all', got {text!r}",
                          field="BenchConfig.threads") from None


def format_threads(threads) -> str:
    """A preset's ``threads`` as ``--threads`` text: ``(1, "all")`` -> ``"1,all"``."""
    return ",".join(str(t) for t in threads)


def _int_tuple(value, name: str) -> tuple[int, ...]:
    """``value`` (``"1,64"`` or a sequence) as ints; ``name`` is the BenchConfig field, for the error."""
    if isinstance(value, str):
        value = [t for t in value.split(",") if t.strip()]
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} takes comma-separated integers, got {value!r}",
                          field=f"BenchConfig.{name}") from None


def bench_config(preset: str = "default", **overrides: Any) -> BenchConfig:
    """The :class:`BenchConfig` of preset ``preset`` with ``overrides`` applied.

    Args:
        preset: a name in :data:`BENCH_PRESETS`.
        overrides: BenchConfig fields; ``None`` keeps the preset's value. ``threads`` may be
            ``"1,all"`` text or a tuple of ints and ``"all"``; ``runtimes`` may be ``--runtime``
            text (names and groups, see :func:`.runtimes.resolve_runtimes`); ``batches`` may be
            ``"1,64"`` text.

    Returns:
        The validated config.

    Raises:
        ConfigError: an unknown preset or field, or a value BenchConfig rejects.
    """
    if preset not in BENCH_PRESETS:
        raise ConfigError(f"unknown bench preset {preset!r}; choose one of {', '.join(BENCH_PRESETS)}")
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown bench setting(s) {', '.join(unknown)}; expected {', '.join(_FIELDS)}")
    values = {**BENCH_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    threads = values["threads"]
    values["threads"] = (parse_threads(threads) if isinstance(threads, str)
                         else parse_threads(format_threads(threads)))
    if isinstance(values["runtimes"], str):
        values["runtimes"] = resolve_runtimes(values["runtimes"])
    values["batches"] = _int_tuple(values["batches"], "batches")
    return BenchConfig(**values)
