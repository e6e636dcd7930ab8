"""Small file helpers: hashing, atomic writes (write a temp name, then rename), checked downloads."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Iterator


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Return the hex ``algorithm`` (a :mod:`hashlib` name) digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.new(algorithm, usedforsecurity=algorithm != "md5")
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file's bytes."""
    return file_digest(path, "sha256")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it over ``final`` only on success.

    Whatever the body writes to the yielded path (a file or a directory) appears at
    ``final`` in one ``os.replace``; if the body raises, the temporary is removed and
    ``final`` is untouched, so no half-written file is ever left behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the body decides whether it is a file or a directory
    try:
        yield tmp
        if final.is_dir() and tmp.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fetch_checked(path: str | os.PathLike, origin: str, digest: str, algorithm: str = "sha256") -> Path:
    """``path``, downloaded from ``origin`` first when absent or when its checksum differs.

    The download is written atomically and kept only when its ``algorithm`` (``sha256`` or
    ``md5``) digest is ``digest``.

    Raises:
        DataError: the download fails (offline: says where to put the file) or its checksum differs.
    """
    from .errors import DataError

    path = Path(path)
    if path.is_file() and file_digest(path, algorithm) == digest:
        return path
    try:
        with atomic_path(path) as tmp, urllib.request.urlopen(origin, timeout=60) as r:
            with open(tmp, "wb") as f:
                while block := r.read(1 << 20):
                    f.write(block)
            if file_digest(tmp, algorithm) != digest:
                raise DataError(f"download from {origin} has the wrong {algorithm} (expected {digest})")
    except OSError as e:
        raise DataError(f"cannot download {origin}: {e} (offline? put the file at {path})") from None
    return path
