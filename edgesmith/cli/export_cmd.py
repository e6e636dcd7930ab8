"""``edgesmith export``: TFLite and ONNX artifacts (float, PTQ, pruned, clustered, QAT) from a trained run."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgesmith.export import CALIBRATION_METHODS, FORMATS, ExportConfig
from edgesmith.export import PRESETS as ONNX_PRESETS
from edgesmith.export.onnx import OLD_PRESETS as OLD_ONNX_PRESETS
from edgesmith.export.config import FALLBACKS, IO_DTYPES
from edgesmith.export.targets import MCU_TARGETS, TARGETS

from ._common import choice_enum, csv_list, err, errors, note_run, out, repeated_csv
from .import_opts import (OUTPUTS_DEFAULT, PREPROCESS_DEFAULT, DataImportOpt, ImportOutOpt, LabelsOpt, OutputsOpt,
                          PreprocessOpt, TrustOpt, run_import)
from .train_cmd import ImageSizeOpt, Resize, ResizeOpt, StrictDataOpt, TestSplitOpt

CalibOpt = Annotated[int, typer.Option(help="Training images in the int8 representative dataset / "
                                            "ONNX calibration set (error if the training split has fewer).")]


Calibration = choice_enum("Calibration", CALIBRATION_METHODS)
OnnxPreset = choice_enum("OnnxPreset", (*ONNX_PRESETS, *OLD_ONNX_PRESETS))  # old names: a note, for one release
IoDtype = choice_enum("IoDtype", IO_DTYPES)
Fallback = choice_enum("Fallback", FALLBACKS)
_D = ExportConfig()


def print_table(records: list[dict], console=out) -> None:
    """One row per artifact: precision, top-1 and its drop (± the 95% CI of that paired difference,
    :func:`edgesmith.export.fidelity.drop_ci95_pts`), agreement, raw/gzip size, sparsity."""
    from rich.table import Table

    t = Table(title="artifacts vs the float Keras model")
    for col in ("artifact", "precision", "top-1", "Δ pt (95% CI)", "agreement", "KiB", "gzip KiB", "sparsity"):
        t.add_column(col, justify="left" if col in ("artifact", "precision") else "right")
    for r in records:
        f = r["fidelity"]
        t.add_row(r["name"], r["precision"], f"{f['top1']:.2%}",
                  f"{-f['accuracy_drop_pts']:+.2f} ±{f['drop_ci95_pts']:.2f}",
                  f"{f['top1_agreement']:.1%}", f"{r['bytes'] / 1024:.1f}", f"{r['gzip_bytes'] / 1024:.1f}",
                  f"{r.get('weight_sparsity', 0):.0%}")
    console.print(t)


def run_export(run_dir: Path, calibration_size: int = ExportConfig().calibration_size, config=None,
               console=out) -> list[dict]:
    """Export with ``config`` (default: an ExportConfig with ``calibration_size``); prints a table (on ``console``).

    When an artifact is over the accuracy budget, its worst layers are printed before the error.
    """
    from edgesmith.core.errors import ParityError
    from edgesmith.export import ExportConfig, export

    note_run(run_dir)  # a crash from here on is logged in RUN/logs (an imported or trained run included)
    config = config or ExportConfig(calibration_size=calibration_size)
    try:
        records = export(run_dir, config, log=console.print)
    except ParityError as e:
        print_parity_failure(e, console)
        raise
    print_export(records, console)
    return records


def print_parity_failure(e: Exception, console=out) -> None:
    """The worst layers of each artifact over the accuracy budget (a ParityError's ``diagnosis``)."""
    from edgesmith.export.diagnose import format_diagnosis

    for name, diag in getattr(e, "diagnosis", {}).items():
        for line in format_diagnosis(name, diag):
            console.print(line, highlight=False)


def print_export(records: list[dict], console=out) -> None:
    """The artifact table, then each artifact's int8 diagnosis and float-fallback lines."""
    from edgesmith.export.diagnose import format_diagnosis
    from edgesmith.export.fallback import format_fallback

    print_table(records, console)
    for r in records:
        if "diagnosis" in r:
            for line in format_diagnosis(r["name"], r["diagnosis"]):
                console.print(line, highlight=False)
        for line in format_fallback(r["name"], r) if "fallback" in r else ():
            console.print(line, highlight=False)


def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory made by `edgesmith train`, or a model trained "
                                                  "elsewhere (.keras, .h5, SavedModel dir) to import first.")],
    data: DataImportOpt = None, image_size: ImageSizeOpt = None, resize: ResizeOpt = Resize("squash"),
    test_split: TestSplitOpt = None, strict_data: StrictDataOpt = False,
    labels: LabelsOpt = None, preprocess: PreprocessOpt = PREPROCESS_DEFAULT,
    outputs: OutputsOpt = OUTPUTS_DEFAULT, trust_model_code: TrustOpt = False, out_dir: ImportOutOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists (model files only).")] = False,
    variants: Annotated[str, typer.Option(
        help="Comma-separated: fp32 (always made, the float parent), fp16 (TFLite float16 weights), "
             "dynamic (dynamic-range int8 weights), int8 (full-integer PTQ: TFLite per-channel, ONNX "
             "static QDQ), int8-tflite (ONNX converted from the int8 TFLite), int8-micro (TFLite with int8 I/O for "
             "TFLite Micro: what --target cortex-m makes).")] = ",".join(_D.variants),
    formats: Annotated[Optional[str], typer.Option(
        help=f"Comma-separated: {', '.join(FORMATS)} [default: {','.join(_D.formats)}; tflite alone when every "
             "--target is a microcontroller].")] = None,
    calibration: Annotated[Calibration, typer.Option(
        help="ONNX static quantization calibration method.")] = Calibration(_D.calibration),
    target: Annotated[Optional[list[str]], typer.Option(
        "--target", help=f"Where the int8 files will run, repeatable or comma-separated: {', '.join(TARGETS)}. "
                         "auto = this CPU (see `edgesmith doctor`). One int8 ONNX file per distinct form: "
                         "x86-vnni U8S8, x86-avx2 U8U8 (no saturation without VNNI), arm64/generic S8S8, tensorrt "
                         "symmetric S8S8; cortex-m: a full-integer TFLite file with int8 I/O checked under TFLite Micro "
                         "(ops, arena, outputs), with C sources (needs the [mcu] extra) "
                         f"[default: {','.join(_D.targets)}].")] = None,
    onnx_preset: Annotated[Optional[OnnxPreset], typer.Option(
        show_choices=False, metavar="FORM",
        help="Explicit int8 ONNX form, overriding --target: u8s8 (U8S8 + uint8 input, fastest on CPUs with "
             "VNNI), u8u8 (U8U8 + uint8 input: exact without VNNI), u8s8-7bit (U8S8 with 7-bit weights: no "
             "saturation without VNNI, coarser weights), s8s8 (ARM, generic) or "
             "tensorrt (symmetric S8S8 QDQ for TensorRT). The old names x86 and x86-avx2 still work for one release.")] = None,
    calibration_size: CalibOpt = _D.calibration_size,
    io_dtype: Annotated[IoDtype, typer.Option(
        help="Input/output type of full-integer TFLite files (uint8 takes raw pixels).")] = IoDtype(_D.io_dtype),
    prune: Annotated[Optional[float], typer.Option(
        help="Also export a magnitude-pruned model at this sparsity in (0, 1), e.g. 0.5 "
             "(PolynomialDecay schedule + fine-tune; shrinks the gzip size, not the raw size).")] = None,
    structured_2_4: Annotated[bool, typer.Option(
        "--structured-2-4", help="Prune with the 2:4 pattern (2 zeros in every 4 weights; sparsity 0.5).")] = False,
    cluster: Annotated[Optional[int], typer.Option(
        help="Also export a weight-clustered model with this many distinct values per kernel (2..256), "
             "e.g. 16; clusters the pruned model, keeping its zeros, with --prune (shrinks the gzip size).")] = None,
    qat: Annotated[bool, typer.Option(
        "--qat", help="Also export quantization-aware-trained int8 (prune-preserving for the pruned model, "
                      "cluster-preserving for the clustered one).")] = False,
    fine_tune_epochs: Annotated[int, typer.Option(
        help="Pruning / clustering fine-tune epochs (on a 10-epoch ResNet-8, 2 lost 1.5 pt to pruning, 4 lost 0.3).")] = _D.prune_tune.epochs,
    qat_epochs: Annotated[int, typer.Option(help="QAT fine-tune epochs.")] = _D.qat_tune.epochs,
    fine_tune_limit: Annotated[Optional[int], typer.Option(
        help="Fine-tune on at most this many training images (default: all).")] = None,
    verify_size: Annotated[int, typer.Option(
        help="Held-out test images each artifact is checked on (10000: the whole CIFAR-10 test set).")] = _D.verify_size,
    max_accuracy_drop: Annotated[Optional[float], typer.Option(
        help="Fail (nothing written) if any artifact's top-1 is more than this many points below the "
             "float model's; prints the worst int8 layers.")] = None,
    float_layers: Annotated[str, typer.Option(
        help="Comma-separated Keras layer names kept in float32 in the int8 TFLite and ONNX files "
             "(e.g. conv2d_3,logits); the rest stays int8.")] = "",
    fallback: Annotated[Fallback, typer.Option(
        help="auto: move the int8 layers that cost most to float, one at a time, until "
             "--max-accuracy-drop holds on held-out training images (never the test split); keeps the "
             "closest mix, and says so, when none does.")] = Fallback(_D.fallback),
    validation_size: Annotated[int, typer.Option(
        help="Held-out training images (not calibration ones) the --fallback search measures on.")] = _D.validation_size,
    diagnose: Annotated[bool, typer.Option(
        "--diagnose", help="Record and print a per-layer SNR diagnosis of every int8 artifact.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the artifact records as JSON on stdout (human lines go to stderr).", metavar="")] = False,
):
    """Export a run to TFLite and ONNX (float, PTQ, pruned, QAT), each verified against the Keras model."""
    with errors():
        from dataclasses import replace

        targets = repeated_csv(target, _D.targets)
        if formats is None:  # a microcontroller runs no ONNX
            formats = "tflite" if set(targets) <= set(MCU_TARGETS) else ",".join(_D.formats)
        config = ExportConfig(  # checked before a model file is imported
            formats=csv_list(formats), variants=csv_list(variants), calibration=calibration.value,
            targets=targets, onnx_preset=onnx_preset.value if onnx_preset else None,
            calibration_size=calibration_size, io_dtype=io_dtype.value, verify_size=verify_size,
            max_accuracy_drop=max_accuracy_drop, prune=prune, structured_2_4=structured_2_4, qat=qat,
            cluster=cluster, prune_tune=replace(_D.prune_tune, epochs=fine_tune_epochs, limit=fine_tune_limit),
            cluster_tune=replace(_D.cluster_tune, epochs=fine_tune_epochs, limit=fine_tune_limit),
            qat_tune=replace(_D.qat_tune, epochs=qat_epochs, limit=fine_tune_limit), diagnose=diagnose,
            float_layers=csv_list(float_layers), fallback=fallback.value, validation_size=validation_size)
        run_dir = run_import(run_dir, data, labels, preprocess=preprocess, outputs=outputs,
                             trust_model_code=trust_model_code, out_dir=out_dir, overwrite=overwrite,
                             image_size=image_size, resize=resize, test_split=test_split, strict_data=strict_data)
        records = run_export(run_dir, config=config, console=err if as_json else out)
        if as_json:
            sys.stdout.write(json.dumps({"run": str(run_dir), "artifacts": records}, indent=2, default=str) + "\n")
