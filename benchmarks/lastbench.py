"""A pointer to the last bench on this machine, so ``edgesmith doctor`` can quote a measurement.

``$EDGESMITH_CACHE/last-bench.json`` (default ``~/.cache/edgesmith``) holds the path of the last
``results.json`` a local bench wrote and the run it measured; nothing else is cached (the
figures stay in the run). No TensorFlow.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgesmith.core.fsutil import write_json

NAME = "last-bench.json"


def cache_file() -> Path:
    """``$EDGESMITH_CACHE/last-bench.json`` (default ``~/.cache/edgesmith/last-bench.json``)."""
    return Path(os.environ.get("EDGESMITH_CACHE", Path.home() / ".cache" / "edgesmith")) / NAME


def remember(results: str | Path, run_dir: str | Path) -> None:
    """Record ``results`` (a results.json) of ``run_dir`` as this machine's last bench; a cache
    that cannot be written is skipped (it is a convenience, not a result)."""
    try:
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        write_json(cache_file(), {"results": str(Path(results).resolve()), "run": str(Path(run_dir).resolve())})
    except OSError:
        pass


def last() -> tuple[Path, Path] | None:
    """``(results.json, run directory)`` of the last bench here, or None (none, or its files are gone)."""
    try:
        entry = json.loads(cache_file().read_text(encoding="utf-8"))
        results, run = Path(entry["results"]), Path(entry["run"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (results, run) if results.is_file() else None
