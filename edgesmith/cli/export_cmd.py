"""``edgesmith export``: float32 and int8 TFLite and ONNX from a trained run."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import errors, out

CalibOpt = Annotated[int, typer.Option(help="Training images in the int8 representative dataset.")]


def run_export(run_dir: Path, calibration_size: int) -> list[dict]:
    """Export with an ExportConfig built from the options; prints one line per artifact."""
    from edgesmith.export import ExportConfig, export

    records = export(run_dir, ExportConfig(calibration_size=calibration_size))
    for r in records:
        f = r["fidelity"]
        out.print(f"exported {r['file']} ({r['bytes'] / 1024:.1f} KiB): top-1 {f['top1']:.2%}, "
                  f"agrees with Keras on {f['top1_agreement']:.1%} of {f['n']} test images")
    return records


def export_cmd(run_dir: Annotated[Path, typer.Argument(help="Run directory made by `edgesmith train`.")],
               calibration_size: CalibOpt = 256):
    """Export a run to float32 and int8 TFLite and ONNX, each verified against the Keras model."""
    with errors():
        run_export(run_dir, calibration_size)
