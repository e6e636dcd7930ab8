"""``edgesmith predict``: top-k classes of image files with one model file. No TensorFlow."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._common import Target, err, errors, out

TopKOpt = Annotated[int, typer.Option("--top-k", "-k", help="How many classes to show per image.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]
TargetOpt = Annotated[Target, typer.Option(help="cpu, gpu, or auto (GPU when the backend has one, else CPU).")]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="Intra-op threads (default: all available cores).")]


def _table(predictions: list[dict], k: int) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("image", overflow="fold")
    for i in range(k):
        table.add_column(f"#{i + 1}", no_wrap=True)
    for p in predictions:
        table.add_row(escape(p["path"]), *(f"{escape(t['label'])} {t['probability']:.1%}" for t in p["top_k"]))
    return table


def predict_cmd(
        model: Annotated[Path, typer.Argument(help="A .tflite or .onnx model file (labels are read from it).")],
        inputs: Annotated[list[Path], typer.Argument(help="Image files and/or directories (walked recursively).")],
        top_k_: TopKOpt = 3, as_json: JsonOpt = False, target: TargetOpt = Target.auto,
        threads: ThreadsOpt = None):
    """Classify images: top-k labels with probabilities, as a table or --json.

    Images are decoded with Pillow (JPEG/PNG/BMP/WebP/GIF/TIFF, any mode), converted to the
    model's channels (alpha composited over white) and resized to its input with bilinear
    filtering. A file that cannot be read is reported on stderr and skipped; the exit code
    is 1 if any file failed (or the model could not be loaded), else 0.
    """
    from edgesmith.core.errors import ConfigError
    from edgesmith.runtime import load
    from edgesmith.runtime.images import find_images
    from edgesmith.runtime.predict import predict_files

    with errors():
        if top_k_ < 1:
            raise ConfigError(f"--top-k must be >= 1, got {top_k_}")
        runner = load(model, target=target.value, threads=threads)
        s = runner.input_spec
        source = "embedded" if runner.metadata.get("labels") else ("run manifest" if runner.labels else "none")
        err.print(f"{escape(model.name)}: {runner.backend} on {runner.target} ({escape(runner.target_reason)}), "
                  f"{runner.threads} threads; input {s.height}x{s.width}x{s.channels} {s.dtype}; "
                  f"labels: {source}", highlight=False, soft_wrap=True)
        paths = find_images(inputs)
        k = min(top_k_, runner.num_classes)

        def report(f):
            err.print(f"[bold red]skipped:[/] {escape(f['error'])}", highlight=False, soft_wrap=True)

        predictions, failures = predict_files(runner, paths, k, on_error=report)
    if as_json:
        doc = {"model": str(model), "backend": runner.backend, "target": runner.target,
               "target_reason": runner.target_reason, "threads": runner.threads,
               "input": {"height": s.height, "width": s.width, "channels": s.channels},
               "predictions": predictions, "errors": failures}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif predictions:
        out.print(_table(predictions, k))
    summary = f"{len(predictions)} predicted, {len(failures)} failed"
    if not paths:
        summary = "no image files found"
    err.print(summary, highlight=False)
    if failures or not paths:
        raise typer.Exit(1)
