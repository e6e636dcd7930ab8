"""Deployment targets: which int8 ONNX form is exact *and* fast on which kind of CPU. No TensorFlow.

An int8 file's speed and even its accuracy depend on the CPU it runs on. ONNX Runtime's x86
int8 kernels multiply uint8 activations by int8 weights; without VNNI they use ``vpmaddubsw``,
which adds each pair of u8 x s8 products into a *saturating* int16, so a U8S8 file with
full 8-bit weights can lose points there (measured on an AMD Zen 3: -1.5 pt, and an export
that failed its agreement gate). ONNX Runtime's documented remedy, ``reduce_range`` (7-bit
weights: a pair sum then fits in int16), avoids the saturation but the coarser weights cost
accuracy of their own: on the 3-epoch demo ResNet-8 it agreed with float on 91.0% of the test
images natively (a VNNI CPU, no saturation) and 90.5% under an emulated AVX2 CPU (QEMU
``-cpu Haswell``), where full-range U8S8 agreed 91.1%. S8S8 agreed 97.7% there only because
ONNX Runtime runs most S8S8 convolutions in float (3 of the 9 fused): the fused ones saturate
like U8S8. U8U8 widens u8 x u8 products to 16-bit ``vpmaddwd`` operands: nothing saturates, its
AVX2 predictions are bit-identical to a VNNI CPU's, and every convolution is fused, so on AVX2
it is 1.25-1.4x faster than S8S8, though no faster than float (0.93-1.26x float's time in four
measurements). So AVX2 gets U8U8; ``edgesmith optimize`` also tries the 7-bit U8S8 form there.
With VNNI (``vpdpbusd``: AVX512-VNNI, AVX-VNNI) or AMX the products accumulate in int32 and the
full-range U8S8 form is exact and fastest.

=============  ==========  ==================================================================
target         ONNX form   why
=============  ==========  ==================================================================
x86-vnni       u8s8        U8S8 + uint8 input: VNNI / AMX accumulate u8 x s8 in int32
x86-avx2       u8u8        U8U8 + uint8 input: no u8 x s8 pair sums to saturate, all fused
arm64          s8s8        S8S8: Arm's sdot / i8mm kernels and ONNX Runtime's Arm path
tensorrt       tensorrt    symmetric S8S8 QDQ, what TensorRT's int8 builder expects
generic        s8s8        S8S8: the portable QDQ form
cortex-m       (none)      no ONNX: the ``int8-micro`` TFLite file (int8 I/O, TFLite Micro; export/micro.py)
=============  ==========  ==================================================================

``auto`` is this machine, from its ISA flags (:func:`detect_target`). The full-integer TFLite
file is one form everywhere (XNNPACK's int8 kernels are exact on every ISA; only their speed
differs), so targets change ONNX files only.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

from edgesmith.core.cpuinfo import ARM_ARCHS as _ARM
from edgesmith.core.cpuinfo import ARM_DOT_FLAGS, VNNI_FLAGS, cpu_info
from edgesmith.core.cpuinfo import X86_ARCHS as _X86
from edgesmith.core.errors import ConfigError

AUTO = "auto"
# target -> ONNX int8 preset (edgesmith.export.onnx.PRESETS)
TARGET_PRESETS = {"x86-vnni": "u8s8", "x86-avx2": "u8u8", "arm64": "s8s8", "tensorrt": "tensorrt",
                  "generic": "s8s8"}
# microcontroller targets: no ONNX file; the TFLite int8 file gets int8 I/O and is checked under
# TFLite Micro (export/micro.py)
MCU_TARGETS = ("cortex-m",)
TARGETS = (AUTO, *TARGET_PRESETS, *MCU_TARGETS)


@dataclass(frozen=True)
class Machine:
    """What :func:`detect_target` looks at: ``arch`` (``platform.machine()``), ISA ``flags``, CPU ``model``."""

    arch: str
    flags: frozenset[str]
    model: str | None = None

    @classmethod
    def here(cls) -> "Machine":
        """This machine (``/proc/cpuinfo``; empty flags where it cannot be read)."""
        info = cpu_info()
        return cls(platform.machine(), frozenset(info.flags), info.model)

    def record(self) -> dict:
        """``{"cpu", "arch", "isa"}``: the CPU an artifact was verified on (ISA: the int8-relevant flags)."""
        keep = {"sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"} | VNNI_FLAGS \
            | ARM_DOT_FLAGS | {"asimd", "sve", "sve2", "amx_tile"}
        return {"cpu": self.model, "arch": self.arch, "isa": sorted(self.flags & keep)}


def detect_target(machine: Machine | None = None) -> str:
    """The target ``auto`` means on ``machine`` (default: this one).

    x86 with VNNI (``avx512_vnni``, ``avx_vnni``) or AMX int8 -> ``x86-vnni``; any other x86
    (AVX2, AVX-512 without VNNI, SSE) -> ``x86-avx2`` (their u8 x s8 kernels saturate);
    64-bit Arm -> ``arm64``; anything else -> ``generic``.

    Example::

        detect_target(Machine("x86_64", frozenset({"avx2", "fma"})))  # 'x86-avx2'
    """
    m = machine or Machine.here()
    arch = (m.arch or "").lower()
    if arch in _X86:
        return "x86-vnni" if m.flags & VNNI_FLAGS else "x86-avx2"
    if arch in _ARM:
        return "arm64"
    return "generic"


def resolve_targets(names: tuple[str, ...] | list[str], machine: Machine | None = None) -> tuple[str, ...]:
    """Concrete targets, in order, without repeats: ``auto`` becomes :func:`detect_target`.

    Raises:
        ConfigError: no target, or a name not in :data:`TARGETS`.
    """
    bad = [n for n in names if n not in TARGETS]
    if bad or not names:
        raise ConfigError(f"unknown target(s) {bad or '(none)'}; choose from {', '.join(TARGETS)}")
    out: list[str] = []
    for n in names:
        t = detect_target(machine) if n == AUTO else n
        if t not in out:
            out.append(t)
    return tuple(out)


def onnx_forms(names: tuple[str, ...] | list[str], machine: Machine | None = None,
               preset: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """The distinct int8 ONNX forms for ``names``: ``[(preset, targets it serves), ...]``, first target's first.

    Args:
        names: targets (``auto`` included) in the user's order.
        machine: what ``auto`` means (default: this machine).
        preset: an explicit ``--onnx-preset``, which overrides the targets' forms (one form for all).

    Raises:
        ConfigError: an unknown target.
    """
    targets = resolve_targets(names, machine)
    if preset is not None:
        return [(preset, tuple(t for t in targets if t not in MCU_TARGETS))]
    forms: dict[str, tuple[str, ...]] = {}
    for t in targets:
        if t in MCU_TARGETS:
            continue  # a microcontroller runs no ONNX
        forms[TARGET_PRESETS[t]] = forms.get(TARGET_PRESETS[t], ()) + (t,)
    return list(forms.items())
