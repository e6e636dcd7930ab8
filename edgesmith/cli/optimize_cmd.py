"""``edgesmith optimize``: search formats, int8 forms, calibrations and float fallback for the file to ship."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgesmith.core.durations import parse_budget
from edgesmith.export import CALIBRATION_METHODS, FORMATS, ExportConfig
from edgesmith.export.targets import TARGETS
from edgesmith.optimize import OptimizeConfig

from ._common import csv_list, err, errors, out, repeated_csv
from .bench_cmd import DeviceOpt, LimitTestOpt, RemotePythonOpt

_D = OptimizeConfig()


def optimize_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory made by `edgesmith train` (or an import).")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Where to write the candidates, reports and bench [default: RUN-optimize].")] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", help=f"Where the file will run, repeatable or comma-separated: {', '.join(TARGETS)} "
                         "(auto = this CPU): the int8 ONNX forms tried.")] = None,
    budget: Annotated[str, typer.Option(help="Wall-clock budget of the whole search (exports and bench), e.g. "
                                             "5m, 10m, 1h. Candidates that would not fit are skipped and listed.")]
    = "10m",
    accuracy_budget: Annotated[float, typer.Option(
        help="Top-1 points a file may lose against the float model: the recommendation is the fastest file "
             "within it, else the smallest; the fallback candidate aims for it.", metavar="PT")]
    = _D.accuracy_budget,
    formats: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(FORMATS)}.")] = ",".join(_D.formats),
    variants: Annotated[str, typer.Option(help="Comma-separated variants the first candidate makes (fp32, fp16, "
                                               "dynamic, int8).")] = ",".join(_D.variants),
    calibrations: Annotated[str, typer.Option(
        help=f"Comma-separated ONNX calibration methods to try ({', '.join(CALIBRATION_METHODS)}); the first is "
             "the first candidate's.")] = ",".join(_D.calibrations),
    forms: Annotated[bool, typer.Option(help="Also try the S8S8 int8 ONNX form where the target's is another.")]
    = _D.forms,
    fallback: Annotated[bool, typer.Option(help="Also try per-layer float fallback of the int8 files.")]
    = _D.fallback,
    calibration_size: Annotated[int, typer.Option(help="Training images in the representative dataset.")]
    = _D.calibration_size,
    verify_size: Annotated[int, typer.Option(help="Test images export verifies each file on.")] = _D.verify_size,
    validation_size: Annotated[int, typer.Option(
        help="Held-out training images the fallback search measures on.")] = _D.validation_size,
    limit_test: LimitTestOpt = None,
    board: Annotated[str | None, typer.Option(
        "--board", help="Search for a microcontroller board instead (names in `bench --board`): Cortex-M files "
                        "(int8 I/O, export --target cortex-m, needs the [mcu] extra), scored by top-1 under TFLite "
                        "Micro; the most accurate that fits the board's RAM and flash is recommended.",
        metavar="NAME")] = None,
    max_latency: Annotated[float | None, typer.Option(
        help="With --board: only files whose ESTIMATED latency on the board is at most this many ms.",
        metavar="MS")] = None,
    device: DeviceOpt = None,
    remote_python: RemotePythonOpt = None,
    plot: Annotated[bool, typer.Option(help="Draw bench/pareto.png (needs matplotlib).")] = True,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print optimize.json on stdout (human lines go to stderr).", metavar="")] = False,
):
    """Search formats, int8 forms for the target, calibration methods and float-fallback sets within a time
    budget; bench every candidate on the target (this machine or --device) and print the Pareto set, the
    recommended file and the `edgesmith export` command that remakes it."""
    with errors():
        from edgesmith.optimize import optimize
        from edgesmith.optimize.report import summary_lines

        config = OptimizeConfig(
            targets=repeated_csv(target, ExportConfig().targets), formats=csv_list(formats), variants=csv_list(variants),
            calibrations=csv_list(calibrations), forms=forms, fallback=fallback, accuracy_budget=accuracy_budget,
            budget_s=parse_budget(budget), calibration_size=calibration_size, verify_size=verify_size,
            validation_size=validation_size, board=board, max_latency_ms=max_latency)
        devices = None
        if device:
            from edgesmith.benchmarks.devices import parse_devices

            devices = parse_devices(device, remote_python=remote_python)
        where = out_dir or run_dir.with_name(run_dir.name + "-optimize")
        human = err if as_json else out
        result = optimize(run_dir, where, config, devices=devices, limit_test=limit_test, plot=plot,
                          progress=lambda line: human.print(line, highlight=False, markup=False))
        for line in summary_lines(result):
            human.print(line, highlight=False, markup=False, soft_wrap=True)
        human.print(f"reports: {where / 'optimize.md'}, {where / 'bench' / 'report.md'}", highlight=False)
        if as_json:
            sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
