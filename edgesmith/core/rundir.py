"""The run directory: one fixed layout and one manifest shared by every stage.

::

    RUN/
      config.json        what `train` was asked to do
      model.keras        the trained float model (tf_keras), float32 weights
      history.csv        per-epoch loss/accuracy, train and validation
      curves.png         accuracy and loss curves
      metrics.json       test top-1 of the Keras model
      artifacts/         exported files (model_fp32.tflite, model_int8.onnx, ...)
      bench/             results.json, results.csv, report.md
      manifest.json      what was made, from what, sha256, bytes, versions
      .edgesmith.lock    the writers' lock (:mod:`.runlock`; .json beside it: who holds it)

Later stages read the manifest, never guess from file names.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunDirError
from .fsutil import sha256_file, write_json

SCHEMA_VERSION = 1
_PACKAGES = ("edgesmith", "numpy", "tensorflow", "tf_keras", "tensorflow-model-optimization",
             "tf2onnx", "onnx", "onnxruntime", "onnxruntime-gpu", "ai-edge-litert")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (nothing is created by constructing it)."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def __fspath__(self) -> str:  # a RunDir can be passed wherever a path is expected
        return str(self.root)

    config = property(lambda self: self.root / "config.json")
    model = property(lambda self: self.root / "model.keras")
    history = property(lambda self: self.root / "history.csv")
    curves = property(lambda self: self.root / "curves.png")
    metrics = property(lambda self: self.root / "metrics.json")
    artifacts = property(lambda self: self.root / "artifacts")
    bench = property(lambda self: self.root / "bench")
    manifest = property(lambda self: self.root / "manifest.json")
    logs = property(lambda self: self.root / "logs")  # crash logs (core.crashlog), one file per failure


def now_iso() -> str:
    """Current UTC time, ISO 8601, seconds."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (absent ones omitted)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def file_record(path: Path, rel: str, **fields: Any) -> dict:
    """Manifest entry for the file at ``path``, to be stored as ``rel`` (run-relative, POSIX).

    Holds ``file``, ``sha256``, ``bytes`` (size on disk), then ``fields``.
    """
    return {"file": rel, "sha256": sha256_file(path), "bytes": Path(path).stat().st_size, **fields}


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)


def carry_over(old: Path, new: Path) -> list[str]:
    """Put into folder ``new`` every entry of folder ``old`` that ``new`` does not have.

    Files are hard-linked (copied where that fails), so the bytes, and their sha256, are the
    same; folders are carried over whole. Used to rebuild ``RUN/artifacts/`` with what an export
    did not replace before the new folder is renamed over the old one.

    Returns:
        The names carried over, sorted.
    """
    old, new = Path(old), Path(new)
    if not old.is_dir():
        return []
    names = sorted(p.name for p in old.iterdir() if not (new / p.name).exists())
    for name in names:
        src = old / name
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, new / name, symlinks=True, copy_function=_link_or_copy)
        elif src.is_symlink():
            os.symlink(os.readlink(src), new / name)
        else:
            _link_or_copy(str(src), str(new / name))
    return names


def new_manifest(run: RunDir, dataset: dict) -> dict:
    """A fresh manifest for ``run`` (not yet written)."""
    return {"schema_version": SCHEMA_VERSION, "run": run.root.name, "created": now_iso(),
            "dataset": dataset, "model": None, "artifacts": [], "stages": {},
            "versions": package_versions()}


def load_manifest(run: RunDir) -> dict:
    """Read and check ``RUN/manifest.json``.

    Raises:
        RunDirError: no run directory, no manifest, unreadable JSON or unknown schema.
    """
    if not run.root.is_dir():
        raise RunDirError(f"run directory {run.root} does not exist")
    if not run.manifest.is_file():
        raise RunDirError(f"{run.root} is not an edgesmith run (no manifest.json)")
    try:
        m = json.loads(run.manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RunDirError(f"cannot read {run.manifest}: {e}") from None
    if m.get("schema_version") != SCHEMA_VERSION:
        raise RunDirError(f"{run.manifest} has schema {m.get('schema_version')!r}; this edgesmith reads {SCHEMA_VERSION}")
    return m


def stage(manifest: dict, name: str) -> dict:
    """The manifest's record of stage ``name`` (``train``, ``import``, ``export``, ``bench``); ``{}`` if absent."""
    return (manifest.get("stages") or {}).get(name) or {}


def save_manifest(run: RunDir, manifest: dict) -> None:
    """Write the manifest atomically, refreshing the versions of the writer."""
    manifest["versions"] = package_versions()
    manifest["updated"] = now_iso()
    write_json(run.manifest, manifest)


def verify_file(run: RunDir, record: dict) -> Path:
    """Check that a manifest entry's file exists and has the recorded sha256.

    Raises:
        RunDirError: the file is missing or was changed after it was recorded.
    """
    path = run.root / record["file"]
    if not path.is_file():
        raise RunDirError(f"{path} is listed in the manifest but missing")
    if sha256_file(path) != record["sha256"]:
        raise RunDirError(f"{path} changed since it was recorded (sha256 mismatch)")
    return path


def require_model(run: RunDir) -> tuple[dict, Path]:
    """Manifest and verified Keras model path of a trained run.

    Raises:
        RunDirError: not a run, or it holds no trained model.
    """
    m = load_manifest(run)
    if not m.get("model"):
        raise RunDirError(f"{run.root} holds no trained model (run `edgesmith train` first)")
    return m, verify_file(run, m["model"])
