"""The one error family edgesmith raises on bad input.

The CLI turns an :class:`EdgesmithError` into a one-line message and exit code 1;
any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class EdgesmithError(Exception):
    """Base class: a problem with what the caller asked for, not a bug."""


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
