"""What ``edgesmith optimize`` searches: candidate exports of one run, and the command that remakes each file.

No TensorFlow here: a candidate is an :class:`~edgesmith.export.ExportConfig` (TF-free) and a
label. The space, in the order the search runs it (the first is always made; the others as the
time budget allows):

=================  =========================================================================
candidate          files
=================  =========================================================================
(first, no label)  float32, float16 (TFLite), dynamic-range int8 and PTQ full-integer int8 in
                   both formats; int8 ONNX in each target's form, MinMax calibration
``entropy``        int8 ONNX with entropy (KL) calibration
``percentile``     int8 ONNX with percentile (99.999%) calibration
``s8s8``           x86 with VNNI: int8 ONNX in the S8S8 form (exact on every kernel, slower
                   than U8S8 there)
``u8s8_7bit``      x86 without VNNI: int8 ONNX in the U8S8 form with 7-bit weights (no int16
                   saturation, may be faster than the U8U8 form the target gets, coarser weights)
``fallback``       PTQ int8 in both formats with the layers that cost most kept in float until
                   the accuracy budget holds on held-out training images
                   (:mod:`edgesmith.export.fallback`); kept only when it keeps a layer in float
=================  =========================================================================

Every candidate's int8 files are calibrated on the same representative dataset (the run's first
``calibration_size`` training images) and verified by export against the float Keras model.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

from edgesmith.benchmarks.advice import DEFAULT_BUDGET_PTS  # bench --recommend's budget, top-1 points
from edgesmith.export import CALIBRATION_METHODS, FORMATS, VARIANTS, ExportConfig
from edgesmith.export.onnx import PRESETS
from edgesmith.export.targets import AUTO, TARGETS, Machine, onnx_forms, resolve_targets

from edgesmith.core.errors import ConfigError

SEARCH_VARIANTS = ("fp32", "fp16", "dynamic", "int8")  # what the first candidate makes by default
# target -> int8 ONNX forms also worth measuring there (edgesmith.export.onnx.PRESETS): the bench on the
# target then shows what each trades (speed against exactness)
ALTERNATIVE_FORMS = {"x86-vnni": ("s8s8",), "x86-avx2": ("u8s8-7bit",)}
# With a board: Cortex-M files calibrated on this many times calibration_size images are tried too.
MCU_CALIBRATION_FACTORS = (4,)


@dataclass(frozen=True)
class OptimizeConfig:
    """What to search and under which budgets.

    Attributes:
        targets: deployment targets of the int8 ONNX forms (:data:`edgesmith.export.targets.TARGETS`;
            ``auto`` is this CPU).
        formats: ``tflite`` and/or ``onnx``.
        variants: of :data:`edgesmith.export.VARIANTS`, made by the first candidate (``fp32`` is
            always made: every quantized file is compared with it).
        calibrations: ONNX calibration methods to try (:data:`edgesmith.export.CALIBRATION_METHODS`;
            the first is the first candidate's).
        forms: also try the int8 ONNX forms of :data:`ALTERNATIVE_FORMS` for the targets.
        fallback: also try per-layer float fallback for the PTQ int8 files.
        accuracy_budget: top-1 points a file may lose against the float Keras model (the
            recommendation's rule and the fallback's target), >= 0.
        budget_s: wall-clock budget of the whole search (exports and the bench), seconds.
        calibration_size: training images in the representative dataset.
        verify_size: test images export verifies each file on.
        validation_size: held-out training images the fallback measures on.
        board: a microcontroller board of ``boards.json`` (``nucleo-l4r5zi``, ``pico``, ...): the
            search makes Cortex-M files (:data:`MCU_CALIBRATION_FACTORS`) instead of the desktop
            ones and picks the most accurate under TFLite Micro that fits the board.
        max_latency_ms: with ``board``: only files whose estimated latency there is at most this, ms.

    Raises:
        ConfigError: an unknown name or a number out of range.
    """

    targets: tuple[str, ...] = (AUTO,)
    formats: tuple[str, ...] = FORMATS
    variants: tuple[str, ...] = SEARCH_VARIANTS
    calibrations: tuple[str, ...] = CALIBRATION_METHODS
    forms: bool = True
    fallback: bool = True
    accuracy_budget: float = DEFAULT_BUDGET_PTS
    budget_s: float = 600.0
    calibration_size: int = 256
    verify_size: int = 500
    validation_size: int = 1000
    board: str | None = None
    max_latency_ms: float | None = None

    def __post_init__(self):
        if self.max_latency_ms is not None and (self.board is None or not self.max_latency_ms > 0):
            raise ConfigError("max_latency_ms needs board (it caps the latency estimated there) and must be > 0",
                              field="OptimizeConfig.max_latency_ms")
        if self.board is not None:
            from edgesmith.benchmarks.boards import board_spec, load_boards

            board_spec(self.board, load_boards())  # an unknown board is named with the choices
        bad = [c for c in self.calibrations if c not in CALIBRATION_METHODS]
        if bad or not self.calibrations:
            raise ConfigError(f"unknown calibration method(s) {bad or '(none)'}; choose from "
                              f"{', '.join(CALIBRATION_METHODS)}")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ConfigError(f"unknown target(s) {bad or '(none)'}; choose from {', '.join(TARGETS)}")
        if self.accuracy_budget < 0:
            raise ConfigError(f"accuracy_budget must be >= 0 points, got {self.accuracy_budget}",
                              field="OptimizeConfig.accuracy_budget")
        if not self.budget_s > 0:
            raise ConfigError(f"budget_s must be longer than zero, got {self.budget_s} s",
                              field="OptimizeConfig.budget_s")
        self.first()  # formats, variants and sizes are checked by ExportConfig

    def first(self) -> ExportConfig:
        """The first candidate's export config (the run's float files and every variant asked for)."""
        variants = ("fp32", *[v for v in self.variants if v != "fp32"])
        # a default variant the chosen formats lack (fp16 with ONNX only) is dropped; any other is ExportConfig's error
        variants = tuple(v for v in variants if v not in SEARCH_VARIANTS or set(VARIANTS[v]) & set(self.formats))
        return ExportConfig(formats=self.formats, variants=variants,
                            calibration=self.calibrations[0], targets=self.targets,
                            calibration_size=self.calibration_size, verify_size=self.verify_size)

    def to_dict(self) -> dict:
        return {"targets": list(self.targets), "formats": list(self.formats), "variants": list(self.variants),
                "calibrations": list(self.calibrations), "forms": self.forms, "fallback": self.fallback,
                "accuracy_budget": self.accuracy_budget, "budget_s": self.budget_s,
                "calibration_size": self.calibration_size, "verify_size": self.verify_size,
                "validation_size": self.validation_size, "board": self.board, "max_latency_ms": self.max_latency_ms}


@dataclass(frozen=True)
class Candidate:
    """One export of the search.

    Attributes:
        label: appended to its artifacts' names and files (``onnx_int8_entropy``,
            ``model_int8_entropy.onnx``); empty for the first candidate.
        config: the export it runs (on a scratch copy of the run).
        why: one line for the report.
    """

    label: str
    config: ExportConfig
    why: str

    @property
    def shown(self) -> str:
        """The label in reports: ``(first)`` for the first candidate."""
        return self.label or "(first)"


def candidates(config: OptimizeConfig, machine: Machine | None = None) -> list[Candidate]:
    """The candidate exports of ``config`` in the order the search runs them (see the module docstring).

    Args:
        config: the search.
        machine: what ``auto`` means (default: this CPU).
    """
    if config.board is not None:
        return _mcu_candidates(config)
    first = config.first()
    out = [Candidate("", first, "float, float16, dynamic-range and PTQ int8 files; int8 ONNX in the form of "
                                f"{', '.join(resolve_targets(config.targets, machine))}, "
                                f"{config.calibrations[0]} calibration")]
    int8 = "int8" in config.variants
    if int8 and "onnx" in config.formats:
        onnx_int8 = replace(first, formats=("onnx",), variants=("int8",))
        for method in config.calibrations[1:]:
            out.append(Candidate(method, replace(onnx_int8, calibration=method),
                                 f"int8 ONNX with {method} calibration"))
        forms = [preset for preset, _ in onnx_forms(config.targets, machine)]
        extra = [f for t in resolve_targets(config.targets, machine) for f in ALTERNATIVE_FORMS.get(t, ())]
        for form in dict.fromkeys(f for f in extra if f not in forms) if config.forms else ():
            out.append(Candidate(form.replace("-", "_"), replace(onnx_int8, onnx_preset=form),
                                 f"int8 ONNX in the {form} form ({PRESETS[form].form})"))
    if int8 and config.fallback:
        out.append(Candidate("fallback", replace(first, variants=("int8",), max_accuracy_drop=config.accuracy_budget,
                                                 fallback="auto", validation_size=config.validation_size),
                             f"PTQ int8 with the costliest layers in float until {config.accuracy_budget:g} pt "
                             f"holds on {config.validation_size} held-out training images"))
    return out


def _mcu_candidates(config: OptimizeConfig) -> list[Candidate]:
    """For a board: the Cortex-M file (int8 I/O, TFLite Micro-checked) calibrated on ``calibration_size``
    training images, then on more (:data:`MCU_CALIBRATION_FACTORS`: the ranges int8 keeps, the one knob a
    Cortex-M file has here)."""
    base = ExportConfig(formats=("tflite",), variants=("fp32", "int8-micro"), targets=("cortex-m",),
                        calibration_size=config.calibration_size, verify_size=config.verify_size)
    out = [Candidate("", base, f"the Cortex-M file (int8 I/O, checked under TFLite Micro), "
                               f"calibrated on {config.calibration_size} training images")]
    for k in MCU_CALIBRATION_FACTORS:
        n = config.calibration_size * k
        out.append(Candidate(f"calib{n}", replace(base, variants=("int8-micro",), calibration_size=n),
                             f"the Cortex-M file calibrated on {n} training images"))
    return out


def export_command(run: str, record: dict, candidate: Candidate) -> str:
    """The ``edgesmith export`` line that remakes ``record``'s file from ``run`` (options that differ from the defaults).

    A fallback file is remade with ``--float-layers`` (the layers the search kept in float), so
    the command is exact and needs no search.

    Args:
        run: the run directory as the user gave it.
        record: the artifact's manifest record (``format``, ``variant``, ``targets``,
            ``onnx_preset``, ``float_layers``).
        candidate: the candidate that made it.
    """
    c, d = candidate.config, ExportConfig()
    parts = ["edgesmith", "export", run, "--formats", record["format"], "--variants", record["variant"]]
    if record.get("targets"):
        parts += ["--target", record["targets"][0]]  # the first target of a form reproduces that form
    if c.onnx_preset is not None:
        parts += ["--onnx-preset", c.onnx_preset]
    if record["format"] == "onnx" and record["variant"] == "int8" and c.calibration != d.calibration:
        parts += ["--calibration", c.calibration]
    if c.calibration_size != d.calibration_size:
        parts += ["--calibration-size", str(c.calibration_size)]
    if record.get("float_layers"):
        parts += ["--float-layers", ",".join(record["float_layers"])]
    return shlex.join(parts)
