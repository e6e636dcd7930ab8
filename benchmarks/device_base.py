"""What every bench device is: the :class:`Device` protocol, this machine (:class:`LocalDevice`), the
device error and the version check a remote device must pass. No SSH here (:mod:`.remote`), no
scheduling (:mod:`.devices`), so the suite, the devices and the remote module all sit above it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from edgesmith.core.errors import EdgesmithError

from ._probe import sys_readings
from .schema import LOCAL



class DeviceError(EdgesmithError):
    """A device could not be used or was lost mid-run (one line: which device and why)."""


class Device(Protocol):
    """What :func:`.suite.bench_run` needs from the machine it measures on."""

    name: str
    kind: str

    def __enter__(self) -> "Device": ...

    def __exit__(self, *exc) -> None: ...

    def detect_runtimes(self) -> dict: ...

    def worker(self, job: dict, workdir: Path, tag: str): ...

    def load_avg(self) -> float | None: ...

    def environment(self) -> dict: ...


def edgesmith_version() -> str:
    """This machine's edgesmith version (package metadata, else ``edgesmith.__version__``)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("edgesmith")
    except importlib.metadata.PackageNotFoundError:
        import edgesmith

        return edgesmith.__version__


def compatible(local: str, remote: str) -> bool:
    """Whether a device's edgesmith can run this machine's bench jobs: the same major.minor."""
    return local.split(".")[:2] == remote.split(".")[:2]


def install_hint(python: str, version: str) -> str:
    """The command that gives a device a compatible runtime-only edgesmith."""
    return f"`{python} -m pip install 'edgesmith~={version}'` (add [onnx] for .onnx files)"


class LocalDevice:
    """This machine: workers are local processes, as ``edgesmith bench`` has always run them."""

    name = LOCAL
    kind = "local"

    def __enter__(self) -> "LocalDevice":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def detect_runtimes(self) -> dict:
        """Runtime name -> :class:`.runtimes.RuntimeStatus` on this machine."""
        from .runtimes import RUNTIMES, detect_runtimes

        return detect_runtimes(RUNTIMES)

    def worker(self, job: dict, workdir: Path, tag: str):
        """Start one cell's worker process here (see :class:`.worker.WorkerProcess`)."""
        from .worker import WorkerProcess

        return WorkerProcess(job, workdir, tag)

    def load_avg(self) -> float | None:
        """1-minute load average, None where unknown."""
        try:
            return round(os.getloadavg()[0], 2)
        except (AttributeError, OSError):
            return None

    def environment(self) -> dict:
        """:func:`.env.environment` plus ``device``, CPU ``governor``, ``cpu0_mhz`` and ``temperatures_c``."""
        from .env import environment

        return {"device": self.name, **environment(), **sys_readings()}
