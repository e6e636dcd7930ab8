"""The one error family edgesmith raises on bad input.

The CLI turns an :class:`EdgesmithError` into a one-line message and exit code 1;
any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class EdgesmithError(Exception):
    """Base class: a problem with what the caller asked for, not a bug.

    The message speaks the library's terms: it names the config field or parameter and the value
    (``learning_rate must be in (0, 10), got 0``), never a command-line flag. ``field``, when
    given, says which value is at fault as ``"Owner.name"`` (``"TrainConfig.learning_rate"``,
    ``"prune.sparsity"``); the CLI uses it to show its own flag for the names in the message.
    """

    def __init__(self, *args, field: str | None = None):
        super().__init__(*args)
        self.field = field


class DataError(EdgesmithError):
    """A dataset is missing, empty, malformed or inconsistent."""


class ConfigError(EdgesmithError):
    """An option or combination of options is invalid (unknown model, bad number, ...)."""


class RunDirError(EdgesmithError):
    """A run directory is missing, incomplete, or its manifest does not match its files."""


class RunLockedError(RunDirError):
    """Another command is writing the run directory and kept it for longer than the wait."""


class BackendUnavailable(EdgesmithError):
    """A runtime backend, execution provider or optional extra is not installed or usable."""


class ParityError(EdgesmithError):
    """An exported artifact disagrees with its reference model beyond the tolerance."""
