"""``edgesmith predict``: top-k classes of image files with one model file (or a run's). No TensorFlow.

Output for people (``--format table``, the default) or scripts: ``csv`` (one row per image, written
with the csv module so any path survives), ``jsonl`` (one JSON object per image, streamed as the
images are predicted; a file that fails is an object with ``error``), ``json`` (one document at the
end). Progress, the model line and failures go to stderr.
"""
from __future__ import annotations

import csv
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from edgesmith.core.deprecation import deprecated

from ._common import Device, err, errors, out


class Format(str, Enum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    json = "json"


STREAM_CHUNK = 16  # images per step with --format jsonl/csv: the first lines come quickly

TopKOpt = Annotated[int, typer.Option("--top-k", "-k", help="How many classes to show per image.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, csv, jsonl (one object per image, "
                                                                  "streamed) or json (one document).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as --format json.", metavar="")]  # a flag: no <bool>
DeviceOpt = Annotated[Device, typer.Option(
    "--device", help="cpu, gpu, or auto (GPU when the backend has one, else CPU).")]
OldTargetOpt = Annotated[Optional[Device], typer.Option("--target", hidden=True, help="Deprecated: use --device.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="Intra-op threads (default: all available cores).")]


def _table(predictions: list[dict], k: int) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("image", overflow="fold")
    for i in range(k):
        table.add_column(f"#{i + 1}", no_wrap=True)
    for p in predictions:
        table.add_row(escape(p["path"]), *(f"{escape(t['label'])} {t['probability']:.1%}" for t in p["top_k"]))
    return table


def _csv_header(k: int) -> list[str]:
    return ["path"] + [f"{field}_{i + 1}" for i in range(k) for field in ("label", "class", "probability")]


def _csv_row(p: dict) -> list:
    return [p["path"]] + [v for t in p["top_k"] for v in (t["label"], t["class"], t["probability"])]


def predict_cmd(
        model: Annotated[Path, typer.Argument(help="A .tflite or .onnx model file, or a run directory (its "
                                                   "recommended, else int8 TFLite, file).")],
        inputs: Annotated[list[Path], typer.Argument(help="Image files and/or directories (walked recursively).")],
        top_k_: TopKOpt = 3, fmt: FormatOpt = Format.table, as_json: JsonOpt = False,
        device: DeviceOpt = Device.auto, threads: ThreadsOpt = None, old_target: OldTargetOpt = None):
    """Classify images: top-k labels with probabilities, as a table, CSV, JSON Lines or JSON.

    Images are decoded with Pillow (JPEG/PNG/BMP/WebP/GIF/TIFF, any mode), converted to the
    model's channels (alpha composited over white) and resized to its input with bilinear
    filtering, by the resize policy the model file records (squash, crop or pad: as in training). A file that cannot be read is reported on stderr and skipped; the exit code
    is 1 if any file failed (or the model could not be loaded), else 0.
    """
    from edgesmith.core.errors import ConfigError
    from edgesmith.runtime import load
    from edgesmith.runtime.images import find_images
    from edgesmith.runtime.predict import model_in_run, predict_files

    fmt = Format.json if as_json else fmt
    if old_target is not None:  # the old spelling, for one release
        deprecated("--target is deprecated, use --device")
        device = old_target
    with errors():
        if top_k_ < 1:
            raise ConfigError(f"--top-k must be >= 1, got {top_k_}")
        if model.is_dir():
            model, why = model_in_run(model)
            err.print(f"using {escape(str(model))}: {why}", highlight=False, soft_wrap=True)
        runner = load(model, device=device.value, threads=threads)
        s = runner.input_spec
        source = "embedded" if runner.metadata.get("labels") else ("run manifest" if runner.labels else "none")
        err.print(f"{escape(model.name)}: {runner.backend} on {runner.device_kind} ({escape(runner.device_reason)}), "
                  f"{runner.threads} threads; input {s.height}x{s.width}x{s.channels} {s.dtype}; "
                  f"labels: {source}", highlight=False, soft_wrap=True)
        paths = find_images(inputs)
        k = min(top_k_, runner.num_classes)
        writer = csv.writer(sys.stdout, lineterminator="\n") if fmt is Format.csv else None
        if writer:
            writer.writerow(_csv_header(k))

        def report(f):
            err.print(f"[bold red]skipped:[/] {escape(f['error'])}", highlight=False, soft_wrap=True)
            if fmt is Format.jsonl:
                sys.stdout.write(json.dumps(f) + "\n")
                sys.stdout.flush()

        def emit(p):
            if fmt is Format.jsonl:
                sys.stdout.write(json.dumps(p) + "\n")
            else:
                writer.writerow(_csv_row(p))
            sys.stdout.flush()

        streaming = fmt in (Format.jsonl, Format.csv)
        predictions, failures = predict_files(runner, paths, k, on_error=report,
                                              on_result=emit if streaming else None,
                                              **({"chunk": STREAM_CHUNK} if streaming else {}))
    if fmt is Format.json:
        doc = {"model": str(model), "backend": runner.backend, "device": runner.device_kind,
               "device_reason": runner.device_reason, "threads": runner.threads,
               "input": {"height": s.height, "width": s.width, "channels": s.channels},
               "predictions": predictions, "errors": failures}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif fmt is Format.table and predictions:
        out.print(_table(predictions, k))
    summary = f"{len(predictions)} predicted, {len(failures)} failed"
    if not paths:
        summary = "no image files found"
    err.print(summary, highlight=False)
    if failures or not paths:
        raise typer.Exit(1)
