"""The ``edgesmith`` command line: thin commands that build a config and call the library.

One module per command; each registers below, wrapped by :func:`._common.guarded`: an
:class:`~edgesmith.core.errors.EdgesmithError` becomes a one-line ``error:`` and exit code 1,
anything else is a bug, said in one ``error: internal error in <command>`` line naming the log
that holds its traceback (``--debug`` prints it), Ctrl-C exits 130. Native log lines of
TensorFlow and LiteRT are filtered out unless ``--verbose`` (:mod:`edgesmith.core.quiet`).
TensorFlow is imported only inside the commands that need it, so ``--help``, ``bench`` and
``predict`` start quickly and work on a runtime-only install.
"""
from __future__ import annotations

import sys
from typing import Annotated

import typer

from edgesmith.core import crashlog, quiet

from ._common import err, error_line, guarded
from ._help import fit_help
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


def _guard_all(typer_app: typer.Typer, prefix: str = "") -> None:
    """Every command registered so far, in sub-apps too, behind the one error boundary."""
    for c in typer_app.registered_commands:
        if not getattr(c.callback, "_guarded", False):
            c.callback = guarded(prefix + (c.name or c.callback.__name__))(c.callback)
    for g in typer_app.registered_groups:
        _guard_all(g.typer_instance, f"{prefix}{g.name} ")


_guard_all(app)
fit_help(app)  # below 140 columns --help wraps (Click's layout) instead of cutting words with "…"


def _print_version(value: bool) -> None:
    if value:
        import importlib.metadata

        import edgesmith

        try:
            version = importlib.metadata.version("edgesmith")
        except importlib.metadata.PackageNotFoundError:  # a source tree that was not installed
            version = edgesmith.__version__
        print(f"edgesmith {version}")
        raise typer.Exit()


@app.callback()
def _global_options(
        version: Annotated[bool, typer.Option("--version", help="Print edgesmith's version and exit.",
                                              callback=_print_version, is_eager=True)] = False,
        debug: Annotated[bool, typer.Option("--debug", help="On an unexpected error, also print its traceback "
                                            "(env EDGESMITH_DEBUG=1).")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show the native log lines of TensorFlow, its "
                                              "converter and LiteRT (env EDGESMITH_VERBOSE=1).")] = False):
    # None, not False: the environment variables still count when the flag is absent
    crashlog.set_debug(True if debug else None)
    quiet.set_verbose(True if verbose else None)


def main() -> None:
    """Console entry point: native log noise filtered from the start (TensorFlow prints before it
    reads its settings), usage errors as ``error:`` lines; exit codes as the commands say."""
    quiet.quiet_environment()
    with quiet.quiet_native_output(python_direct=True):
        code = _main()
    sys.exit(code)


def _main() -> int:
    try:
        rv = app(standalone_mode=False, prog_name="edgesmith")
    except typer.Abort:
        error_line("aborted")
        return 1
    except typer.TyperException as e:  # click's usage errors, said like every other error
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # `edgesmith` alone: the help (rich printed it already)
            if e.format_message().strip():
                print(e.format_message())
        else:
            error_line(e.format_message())
            if ctx is not None:
                err.print(f"{ctx.get_usage()}\nTry '{ctx.command_path} --help' for help.", markup=False,
                          highlight=False, soft_wrap=True)
        return getattr(e, "exit_code", 2)
    return rv if isinstance(rv, int) else 0
