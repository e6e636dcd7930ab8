"""Config dataclasses to and from JSON-ready dicts, field by field (``dataclasses.asdict`` / ``fields``).

One rule for every config a run records (``DataSpec``, ``TrainConfig``, ``ExportConfig``), so a
field added to a config is recorded and read back without a second list to keep in step::

    d = to_dict(config)            # tuples as lists, nested configs as dicts
    assert from_dict(type(config), d) == config

:func:`from_dict` ignores keys the class does not have (a manifest holds more than a config)
and leaves missing fields at their defaults (manifests written before a field existed).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(config: Any) -> dict:
    """``dataclasses.asdict(config)`` with tuples as lists (what JSON holds), recursively."""
    return _lists(dataclasses.asdict(config))


def from_dict(cls: type[T], d: dict, **overrides: Any) -> T:
    """The ``cls`` instance :func:`to_dict` described: lists back to tuples where a field is a
    tuple, dicts back to dataclasses where a field is one; ``overrides`` replace fields.

    Raises:
        TypeError: a field without a default is missing from ``d``.
        Whatever ``cls`` raises for a bad value (ConfigError, DataError).
    """
    hints = typing.get_type_hints(cls)
    values = {f.name: _typed(hints[f.name], d[f.name]) for f in dataclasses.fields(cls)
              if f.init and f.name in d}
    return cls(**{**values, **overrides})


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def _typed(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for kind in kinds:
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            return from_dict(kind, value)
        if typing.get_origin(kind) is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
    return value
