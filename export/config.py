"""What to export: :class:`ExportConfig`, checked on creation, and its plan of artifacts.

An artifact is one (source model, format, variant):

* source: ``base`` (the run's ``model.keras``), ``pruned`` (magnitude-pruned and
  fine-tuned, :mod:`.prune`), ``clustered`` (weight clustering of the pruned model,
  sparsity-preserving, or of the base one, :mod:`.cluster`), ``qat`` (quantization-aware
  fine-tune, :mod:`.qat`), ``pruned_qat`` (prune-preserving QAT of the pruned model) and
  ``clustered_qat`` (cluster-preserving QAT of the clustered model);
* format: a backend of :data:`BACKENDS` (``tflite``, ``onnx``);
* variant: one its backend declares (:class:`.variants.Variant`): ``fp32``; ``fp16``
  (TFLite); ``dynamic`` (dynamic-range int8 weights); ``int8`` (full-integer PTQ: TFLite
  per-channel with uint8/int8 I/O, ONNX static QDQ with a calibration method);
  ``int8-tflite`` (ONNX: the int8 TFLite file through tf2onnx); ``int8-micro`` (TFLite
  full-integer with int8 I/O for TFLite Micro, :mod:`.micro`; what ``--target cortex-m`` makes).

Names: ``tflite_int8``, ``pruned_onnx_dynamic``, ``qat_tflite_int8``; files
``model_int8.onnx``, ``model_pruned_fp32.tflite``, ...

Targets (:mod:`.targets`): the int8 ONNX variant is made once per distinct form its targets
need. The first form keeps the plain names (``onnx_int8``, ``model_int8.onnx``); the others
add their preset (``onnx_int8_s8s8``, ``model_int8_u8s8_7bit.onnx``).
"""
from __future__ import annotations

from dataclasses import dataclass

from edgesmith.core import configdict
from edgesmith.core.errors import ConfigError

from .cluster import check_clusters
from .finetune import FineTune
from .micro import MICRO_VARIANT
from .micro import VARIANTS as MICRO_VARIANTS
from .onnx import CALIBRATION_METHODS, PRESETS, preset_name
from .onnx import VARIANTS as ONNX_VARIANTS
from .prune import check_sparsity
from .targets import AUTO, MCU_TARGETS, TARGETS, Machine, onnx_forms, resolve_targets
from .tflite import VARIANTS as TFLITE_VARIANTS
from .variants import Variant

IO_DTYPES = ("uint8", "int8")  # full-integer TFLite input/output types
# format -> the variants its backend declares, in a stable order
BACKENDS: dict[str, tuple[Variant, ...]] = {"tflite": TFLITE_VARIANTS + MICRO_VARIANTS, "onnx": ONNX_VARIANTS}
FORMATS = tuple(BACKENDS)
_SPECS = {(v.format, v.name): v for variants in BACKENDS.values() for v in variants}
# variant -> formats that offer it
VARIANTS: dict[str, tuple[str, ...]] = {}
for _fmt, _name in _SPECS:
    VARIANTS[_name] = VARIANTS.get(_name, ()) + (_fmt,)
SOURCES = ("base", "pruned", "clustered", "qat", "pruned_qat", "clustered_qat")
DEFAULT_VARIANTS = ("fp32", "int8")
_ANY_MACHINE = Machine("x86_64", frozenset())  # plans a config without reading this CPU (which forms is moot)
FALLBACKS = ("off", "auto")  # per-layer float fallback of PTQ int8 files (export/fallback.py)


def variant(fmt: str, name: str) -> Variant:
    """The declaration of variant ``name`` of format ``fmt`` (a KeyError if it has none)."""
    return _SPECS[(fmt, name)]


def _form_suffix(form: str | None) -> str:
    return "" if form is None else "_" + form.replace("-", "_")


def artifact_name(source: str, fmt: str, name: str, form: str | None = None) -> str:
    """``tflite_int8``, ``pruned_onnx_dynamic``, ``qat_tflite_int8``, ``onnx_int8_s8s8`` (``form``: an
    extra int8 ONNX preset), ..."""
    return ("" if source == "base" else f"{source}_") + f"{fmt}_{variant(fmt, name).suffix}{_form_suffix(form)}"


def file_name(source: str, fmt: str, name: str, form: str | None = None) -> str:
    """``model_int8.onnx``, ``model_pruned_fp32.tflite``, ``model_int8_u8s8_7bit.onnx``, ..."""
    return ("model_" + ("" if source == "base" else f"{source}_") + f"{variant(fmt, name).suffix}"
            f"{_form_suffix(form)}.{fmt}")


# base artifact name -> its variant declaration
_BASE = {artifact_name("base", v.format, v.name): v for v in _SPECS.values()}
# name -> (format, precision, file name, float parent) of the base model's artifacts
ARTIFACTS = {a: (v.format, v.precision, file_name("base", v.format, v.name),
                 None if v.name == "fp32" else f"{v.format}_fp32") for a, v in _BASE.items()}


@dataclass(frozen=True)
class Planned:
    """One artifact to write; ``onnx_preset`` and ``targets`` (the deployment targets its form
    serves) are set for int8 ONNX files, ``targets`` also for the other quantized ones."""

    name: str
    source: str
    format: str
    variant: str
    file: str
    float_parent: str | None
    onnx_preset: str | None = None
    targets: tuple[str, ...] = ()

    @property
    def spec(self) -> Variant:
        """The backend's declaration of this artifact's variant."""
        return variant(self.format, self.variant)

    @property
    def precision(self) -> str:
        return self.spec.precision


@dataclass(frozen=True)
class ExportConfig:
    """How to export a run.

    Attributes:
        formats: ``tflite`` and/or ``onnx``.
        variants: of :data:`VARIANTS`; each is made in every chosen format that offers it,
            and ``fp32`` (the float parent) is always added for each format.
        artifacts: explicit base artifact names (of :data:`ARTIFACTS`), overriding
            formats x variants (int8 ONNX ones need their float parent).
        calibration_size: training images in the representative dataset / calibration reader.
        calibration: ONNX static quantization calibration method (minmax, entropy, percentile).
        targets: deployment targets (:data:`edgesmith.export.targets.TARGETS`): ``auto`` (this
            CPU), ``x86-vnni``, ``x86-avx2``, ``arm64``, ``tensorrt``, ``generic``; one int8
            ONNX file per distinct form they need (:func:`~.targets.onnx_forms`); ``cortex-m``
            (a microcontroller) adds the ``int8-micro`` TFLite file (int8 I/O, checked under
            TFLite Micro, :mod:`.micro`), in place of the ``int8`` one when it is the only target.
        onnx_preset: explicit int8 ONNX layout (:data:`edgesmith.export.onnx.PRESETS`),
            overriding the targets' forms: ``u8s8`` (U8S8 with a uint8 input), ``u8s8-7bit``
            (the same with 7-bit weights), ``u8u8``, ``s8s8`` or ``tensorrt`` (symmetric S8S8 QDQ);
            ``None``: chosen per target. The old names ``x86`` / ``x86-avx2`` are accepted
            for one release and translated (a ``note:`` on stderr).
        io_dtype: input/output type of full-integer TFLite files: ``uint8`` or ``int8``.
        verify_size: held-out test images on which each artifact is compared with Keras.
        min_agreement_fp32 / min_agreement_int8: top-1 agreement with the artifact's own
            Keras source model below which export fails (a silent conversion bug).
        max_accuracy_drop: fail if any artifact's test top-1 is more than this many
            percentage points below the float Keras model's (``None``: no budget).
        prune: target sparsity in (0, 1) for the ``pruned`` source (``None``: no pruning).
        structured_2_4: prune with the 2:4 pattern instead (sparsity 0.5).
        cluster: clusters per kernel (2..256) for the ``clustered`` source (``None``: no
            clustering); clusters the pruned model, keeping its zeros, when pruning.
        qat: add quantization-aware-trained int8 artifacts (``qat``; ``pruned_qat`` too
            when pruning, with the prune-preserving scheme; ``clustered_qat`` when
            clustering, with the cluster-preserving scheme).
        prune_tune / cluster_tune / qat_tune: the fine-tunes.
        diagnose: record a per-layer int8 diagnosis for every int8 artifact (always done
            for an artifact over the accuracy budget).
        float_layers: Keras layer names kept in float32 in every PTQ ``int8`` file (TFLite
            and ONNX), the rest int8 (:mod:`.fallback` maps them to each format's ops).
        fallback: ``off``, or ``auto``: per PTQ ``int8`` file, move the layers that cost most
            to float, one at a time, until ``max_accuracy_drop`` holds on ``validation_size``
            held-out training images (never the test split); if no mix meets it, keep the
            closest and say so instead of failing.
        validation_size: training images (the last ones, none of them calibration images)
            the fallback search measures on.

    Raises:
        ConfigError: an unknown name or an impossible combination, named in the message.
    """

    formats: tuple[str, ...] = FORMATS
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    artifacts: tuple[str, ...] | None = None
    calibration_size: int = 256
    calibration: str = "minmax"
    targets: tuple[str, ...] = (AUTO,)
    onnx_preset: str | None = None
    io_dtype: str = "uint8"
    verify_size: int = 500
    min_agreement_fp32: float = 0.99
    min_agreement_int8: float = 0.85
    max_accuracy_drop: float | None = None
    prune: float | None = None
    structured_2_4: bool = False
    cluster: int | None = None
    qat: bool = False
    prune_tune: FineTune = FineTune(epochs=4, learning_rate=5e-4)
    cluster_tune: FineTune = FineTune(epochs=4, learning_rate=1e-4)
    qat_tune: FineTune = FineTune(epochs=1, learning_rate=1e-4)
    diagnose: bool = False
    float_layers: tuple[str, ...] = ()
    fallback: str = "off"
    validation_size: int = 1000

    def __post_init__(self):
        if self.onnx_preset is not None:  # an old preset name works for one release, with a note
            object.__setattr__(self, "onnx_preset", preset_name(self.onnx_preset))
        self._check_choices()
        if self.calibration_size < 1 or self.verify_size < 1:
            raise ConfigError("calibration and verification sizes must be >= 1")
        if self.prune is not None:
            check_sparsity(self.prune)
        if self.cluster is not None:
            check_clusters(self.cluster)
        if self.structured_2_4 and self.prune not in (None, 0.5):
            raise ConfigError(f"structured_2_4 sparsity is 0.5; it cannot reach prune={self.prune}",
                              field="ExportConfig.prune")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise ConfigError(f"max_accuracy_drop must be >= 0 points, got {self.max_accuracy_drop}",
                              field="ExportConfig.max_accuracy_drop")
        self._check_fallback()

    def _check_fallback(self) -> None:
        if self.fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {', '.join(FALLBACKS)}, got {self.fallback!r}",
                              field="ExportConfig.fallback")
        if self.validation_size < 1:
            raise ConfigError(f"validation_size must be >= 1, got {self.validation_size}",
                              field="ExportConfig.validation_size")
        if self.fallback == "auto" and self.max_accuracy_drop is None:
            raise ConfigError("fallback auto searches for the float layers that meet max_accuracy_drop: give one",
                              field="ExportConfig.fallback")
        if (self.float_layers or self.fallback != "off") and not any(p.variant == "int8" and "qat" not in p.source
                                                                      for p in self.plan(_ANY_MACHINE)):
            raise ConfigError("float_layers / fallback apply to PTQ int8 files, and nothing here makes one "
                              "(add int8 to variants)", field="ExportConfig.float_layers")

    def _check_choices(self) -> None:
        if self.artifacts is not None:
            unknown = [a for a in self.artifacts if a not in ARTIFACTS]
            if unknown or not self.artifacts:
                raise ConfigError(f"unknown artifact(s) {unknown or '(none)'}; choose from {', '.join(ARTIFACTS)}")
            for a in self.artifacts:
                parent = ARTIFACTS[a][3]
                if _BASE[a].needs_float_parent and parent not in self.artifacts:
                    raise ConfigError(f"{a} is quantized from {parent}: export both")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"unknown format(s) {bad or '(none)'}; choose from {', '.join(FORMATS)}")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad or not self.variants:
            raise ConfigError(f"unknown variant(s) {bad or '(none)'}; choose from {', '.join(VARIANTS)}")
        for v in self.variants:
            if not set(VARIANTS[v]) & set(self.formats):
                raise ConfigError(f"variant {v} exists only for {', '.join(VARIANTS[v])}, "
                                  f"not in formats {','.join(self.formats)}", field="ExportConfig.formats")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"unknown calibration method {self.calibration!r}; choose {', '.join(CALIBRATION_METHODS)}")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ConfigError(f"unknown target(s) {bad or '(none)'}; choose from {', '.join(TARGETS)}")
        if self.onnx_preset is not None and self.onnx_preset not in PRESETS:
            raise ConfigError(f"unknown ONNX int8 preset {self.onnx_preset!r}; choose {', '.join(PRESETS)}")
        if self.io_dtype not in IO_DTYPES:
            raise ConfigError(f"io_dtype must be one of {', '.join(IO_DTYPES)}, got {self.io_dtype!r}",
                              field="ExportConfig.io_dtype")

    @property
    def pruning(self) -> bool:
        return self.prune is not None or self.structured_2_4

    def _sources(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(source, [(format, variant), ...]) in plan order."""
        if self.artifacts is not None:
            base = [(_BASE[a].format, _BASE[a].name) for a in self.artifacts]
        else:
            variants = ["fp32", *[v for v in self.variants if v != "fp32"]]
            base = [(f, v) for f in self.formats for v in variants if f in VARIANTS[v]]
        base = self._for_mcu(base)
        sources = [("base", base)]
        if self.pruning:
            sources.append(("pruned", base))
        if self.cluster is not None:
            sources.append(("clustered", base))
        qat_pairs = self._for_mcu([("tflite", "int8")] + ([("onnx", "int8-tflite")] if "onnx" in self.formats else []))
        if self.qat:
            sources.append(("qat", qat_pairs))
            if self.pruning:
                sources.append(("pruned_qat", qat_pairs))
            if self.cluster is not None:
                sources.append(("clustered_qat", qat_pairs))
        return sources

    def _for_mcu(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """With a microcontroller target, the int8 TFLite file also comes in its ``int8-micro`` form
        (int8 I/O, checked under TFLite Micro), instead of the desktop one when every target is an MCU."""
        if not set(self.targets) & set(MCU_TARGETS) or ("tflite", "int8") not in pairs:
            return pairs
        only_mcu = set(self.targets) <= set(MCU_TARGETS)
        out = [p for p in pairs if not (only_mcu and p == ("tflite", "int8"))]
        return out + [("tflite", MICRO_VARIANT)] * (("tflite", MICRO_VARIANT) not in out)

    def onnx_forms(self, machine: Machine | None = None) -> list[tuple[str, tuple[str, ...]]]:
        """``[(ONNX preset, targets it serves), ...]`` on ``machine`` (default: this one), first form first."""
        return onnx_forms(self.targets, machine, self.onnx_preset)

    def plan(self, machine: Machine | None = None) -> list[Planned]:
        """The artifacts to write, float parents first, in a stable order.

        Args:
            machine: what the ``auto`` target means (default: this machine's CPU).
        """
        forms = self.onnx_forms(machine)
        targets = resolve_targets(self.targets, machine)
        out = []
        for source, pairs in self._sources():
            for fmt, v in pairs:
                parent = None if (source, v) == ("base", "fp32") else f"{fmt}_fp32"
                if parent and artifact_name("base", fmt, "fp32") not in [p.name for p in out]:
                    parent = None  # explicit artifact list without the float parent (tflite only)
                if (fmt, v) != ("onnx", "int8"):
                    quantized = not variant(fmt, v).float_compute
                    out.append(Planned(artifact_name(source, fmt, v), source, fmt, v, file_name(source, fmt, v),
                                       parent, targets=targets if quantized else ()))
                    continue
                for i, (preset, served) in enumerate(forms):
                    form = None if i == 0 else preset
                    out.append(Planned(artifact_name(source, fmt, v, form), source, fmt, v,
                                       file_name(source, fmt, v, form), parent, preset, served))
        return out

    def to_dict(self) -> dict:
        """Every field as JSON-ready values (:func:`edgesmith.core.configdict.to_dict`)."""
        return configdict.to_dict(self)

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "ExportConfig":
        """The config :meth:`to_dict` wrote (unknown keys are ignored, missing ones keep their
        defaults); ``overrides`` replace fields.

        Raises:
            ConfigError: as the constructor.
        """
        return configdict.from_dict(cls, d, **overrides)
