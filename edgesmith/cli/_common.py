"""What every command shares: consoles, the error boundary, option parsing helpers."""
from __future__ import annotations

import contextlib
import sys
from enum import Enum
from typing import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from edgesmith.core.errors import ConfigError, EdgesmithError
from edgesmith.runtime.base import TARGETS as RUNTIME_TARGETS

# A pipe or CI log gets a wide console so tables are not truncated to 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def choice_enum(name: str, values) -> type[Enum]:
    """A str Enum for Typer whose values are the library's own choices (``rotate-shift`` -> member
    ``rotate_shift``), so the CLI's choices are the library's and cannot drift from them."""
    return Enum(name, {str(v).replace("-", "_"): str(v) for v in values}, type=str)


Target = choice_enum("Target", RUNTIME_TARGETS)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn edgesmith's own errors into ``error: ...`` on stderr and exit code 1.

    Anything that is not an :class:`EdgesmithError` is a bug and keeps its traceback.
    """
    try:
        yield
    except EdgesmithError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def int_list(text: str, option: str) -> tuple[int, ...]:
    """Parse ``"1,2,4"``; raises ConfigError naming ``option`` on anything else."""
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from None
