"""Help that fits the terminal: below :data:`NARROW` (140) columns, ``--help`` is Click's plain layout, which wraps
every help text instead of cutting words with "…" (Rich's option table gives the help column only what the
option names leave, about 17 columns at 80). Details live in docs/; the help texts stay short."""
from __future__ import annotations

import shutil

import typer
from typer.core import TyperCommand

NARROW = 140  # columns: below this Rich's option table cuts words of the longer help texts


class FittingHelpCommand(TyperCommand):
    """A Typer command whose ``--help`` falls back to Click's wrapping layout on a narrow terminal and shows
    flags as flags (Typer's rich layout writes ``--json <bool>``, which reads as if it took a value)."""

    def format_help(self, ctx, formatter) -> None:
        for p in self.get_params(ctx):  # a flag takes no value: show `--json`, not `--json <bool>`
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""
        if shutil.get_terminal_size().columns >= NARROW:
            return super().format_help(ctx, formatter)
        mode, self.rich_markup_mode = self.rich_markup_mode, None  # Typer's own switch to the plain layout
        try:
            return super().format_help(ctx, formatter)
        finally:
            self.rich_markup_mode = mode


def fit_help(app: typer.Typer) -> None:
    """Give every command registered on ``app`` (and its sub-apps) the fitting help."""
    for c in app.registered_commands:
        if c.cls in (None, TyperCommand):
            c.cls = FittingHelpCommand
    for g in app.registered_groups:
        fit_help(g.typer_instance)
