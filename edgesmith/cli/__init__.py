"""The ``edgesmith`` command line: thin commands that build a config and call the library.

One module per command; each registers below. Only
:class:`~edgesmith.core.errors.EdgesmithError` becomes a one-line message and exit code 1;
anything else is a bug and keeps its traceback. TensorFlow is imported only inside the
commands that need it, so ``--help``, ``bench`` and ``predict`` start quickly and work on
a runtime-only install.
"""
from __future__ import annotations

import typer

from .bench_cmd import bench_cmd
from .data_cmd import data_app
from .doctor_cmd import doctor_cmd
from .export_cmd import export_cmd
from .optimize_cmd import optimize_cmd
from .pipeline_cmd import pipeline_cmd
from .predict_cmd import predict_cmd
from .train_cmd import train_cmd
from .tune_cmd import tune_cmd

app = typer.Typer(help="Train, quantize, export, run and benchmark image classifiers for edge devices.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown")
app.command("train")(train_cmd)
app.command("tune")(tune_cmd)
app.command("export")(export_cmd)
app.command("optimize")(optimize_cmd)
app.command("bench")(bench_cmd)
app.command("pipeline")(pipeline_cmd)
app.command("doctor")(doctor_cmd)
app.command("predict")(predict_cmd)
app.add_typer(data_app, name="data")


def main() -> None:
    """Console entry point."""
    app()
