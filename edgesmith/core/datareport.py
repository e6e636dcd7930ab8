"""What a folder dataset holds and what was left out: ``data inspect`` and the run's data report.

* :func:`inspect_folder` - class counts per split, image sizes (histogram of the longer side),
  formats, skipped files with their reasons, exact duplicates (same bytes) within and across
  splits, and the class imbalance; what ``edgesmith data inspect ROOT`` prints.
* :func:`write_data_report` - ``RUN/data_report.json`` / ``.md`` (files used and skipped per
  split, each skipped file with its reason) and ``RUN/split.json`` (the files of every split,
  relative to the data folder, with their labels), so a run says exactly what it was trained
  and tested on, and the split can be checked or rebuilt.

TF-free: headers and bytes are read with Pillow and hashlib.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import folders
from .data import NAMED_SOURCES, DataSpec, decode_failures, has_split, list_split
from .errors import DataError
from .fsutil import write_json, write_text

# Histogram of the longer image side, px: [lo, hi) per bin
SIZE_BINS = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096, 1 << 30)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _probe(path: Path) -> dict:
    """Header facts and the content hash of one file; ``error`` when it does not decode."""
    from PIL import Image

    info = {"bytes": path.stat().st_size}
    with open(path, "rb") as fh:
        info["sha256"] = hashlib.sha256(fh.read()).hexdigest()
    try:
        with Image.open(path) as im:
            info.update(format=im.format, width=im.width, height=im.height, mode=im.mode)
            im.load()
    except Exception as e:  # noqa: BLE001 - any decoder failure is "this file cannot be used"
        info["error"] = f"cannot decode image ({str(e).strip() or type(e).__name__})"
    return info


def _histogram(sides: list[int]) -> list[dict]:
    counts, _ = np.histogram(sides, bins=SIZE_BINS)
    out = []
    for lo, hi, n in zip(SIZE_BINS[:-1], SIZE_BINS[1:], counts):
        if n:
            out.append({"longer_side_px": f"{lo}-{hi - 1}" if hi < SIZE_BINS[-1] else f">={lo}", "images": int(n)})
    return out


def inspect_folder(root: str | Path, *, test_split: float | None = None, split_seed: int = 0) -> dict:
    """Look at every file of a class-folder dataset (see the module docstring).

    Args:
        root: ``ROOT/{train,[val,]test}/<class>/`` or ``ROOT/<class>/`` (split as training would).
        test_split / split_seed: the flat layout's split, as in :class:`~.data.DataSpec`.

    Returns:
        A JSON-ready dict: ``root``, ``layout``, ``classes``, ``splits`` (per split: ``images``,
        ``class_counts``), ``images`` (readable), ``files`` (all listed), ``sizes``
        (``histogram``, ``distinct``, ``min``/``max`` ``[W, H]``), ``formats``, ``skipped``
        (``[{file, reason}]``), ``duplicates`` (groups of identical files: ``files``,
        ``splits``, ``across_splits``), ``leaks`` (groups across splits), ``imbalance``
        (largest / smallest class count, train split).

    Raises:
        DataError: as :func:`~.folders.list_folder_split`.
    """
    root = Path(root).expanduser().absolute()
    spec = DataSpec(str(root), test_split=test_split if folders.layout(root) == "flat" else None,
                    split_seed=split_seed)
    splits = [s for s in folders.SPLITS if has_split(spec, s)]
    listed = {s: folders.list_folder_split(root, s, test_split=spec.test_split, split_seed=split_seed)
              for s in splits}
    classes = listed["train"].class_names
    skipped = [(f, why) for fs in listed.values() for f, why in fs.skipped]
    n_listed = len(skipped) + sum(len(fs) for fs in listed.values())
    files = [(f, s) for s in splits for f in listed[s].files]
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        probes = list(pool.map(lambda fs: _probe(fs[0]), files, chunksize=64))
    ok = [i for i, p in enumerate(probes) if "error" not in p]
    skipped += [(files[i][0], p["error"]) for i, p in enumerate(probes) if "error" in p]
    per_split = {}
    for s in splits:
        fs = listed[s]
        good = {files[i][0] for i in ok if files[i][1] == s}
        labels = [int(y) for f, y in zip(fs.files, fs.labels) if f in good]
        counts = np.bincount(labels, minlength=len(fs.class_names)) if labels else np.zeros(len(fs.class_names), int)
        per_split[s] = {"images": len(labels), "class_counts": dict(zip(fs.class_names, map(int, counts)))}
    sizes = [(probes[i]["width"], probes[i]["height"]) for i in ok]
    by_hash: dict[str, list[int]] = {}
    for i, p in enumerate(probes):
        by_hash.setdefault(p["sha256"], []).append(i)
    duplicates = []
    for group in by_hash.values():
        if len(group) > 1:
            where = sorted({files[i][1] for i in group})
            duplicates.append({"files": [_rel(files[i][0], root) for i in group], "splits": where,
                               "across_splits": len(where) > 1})
    train_counts = [n for n in per_split["train"]["class_counts"].values()]
    return {
        "root": str(root), "layout": folders.layout(root),
        "split_rule": (f"stratified {spec.test_split or folders.DEFAULT_TEST_SPLIT:.0%} test, split seed {split_seed}"
                       if folders.layout(root) == "flat" else "folders as given"),
        "classes": list(classes), "splits": per_split,
        "files": n_listed,
        "images": len(ok),
        "sizes": {"histogram": _histogram([max(w, h) for w, h in sizes]), "distinct": len(set(sizes)),
                  "min": list(min(sizes, key=lambda s: s[0] * s[1])) if sizes else None,
                  "max": list(max(sizes, key=lambda s: s[0] * s[1])) if sizes else None},
        "formats": dict(Counter(probes[i]["format"] for i in ok).most_common()),
        "suffixes": dict(Counter(files[i][0].suffix for i in ok).most_common()),
        "skipped": [{"file": _rel(f, root), "reason": why} for f, why in skipped],
        "duplicates": duplicates,
        "leaks": [d for d in duplicates if d["across_splits"]],
        "imbalance": round(max(train_counts) / max(min(train_counts), 1), 2) if train_counts else None,
    }


def split_record(spec: DataSpec) -> dict:
    """The files of every split of a folder dataset, relative to it, with their labels (``split.json``).

    Returns:
        ``{"source", "layout", "test_split", "split_seed", "class_names", "splits": {split:
        {"files": [...], "labels": [...]}}}``; for a named source, just ``source`` and ``splits: {}``.
    """
    if spec.source in NAMED_SOURCES:
        return {"source": spec.source, "splits": {}}
    root = Path(spec.source)
    out = {"source": spec.source, "layout": folders.layout(root), "test_split": spec.test_split,
           "split_seed": spec.split_seed, "splits": {}}
    for s in folders.SPLITS:
        if not has_split(spec, s):
            continue
        fs = list_split(spec, s)
        bad = {f for f, _ in decode_failures(spec, s)}
        keep = [(f, int(y)) for f, y in zip(fs.files, fs.labels) if f not in bad]
        out["class_names"] = list(fs.class_names)
        out["splits"][s] = {"files": [_rel(f, root) for f, _ in keep], "labels": [y for _, y in keep]}
    return out


def data_report(spec: DataSpec) -> dict:
    """Files used and skipped per split, each skipped file with its reason (``data_report.json``).

    Decoding failures are those :func:`~.data.load_split` met in this process (or that a
    streaming reader noted with :func:`~.data.note_decode_failure`).
    """
    if spec.source in NAMED_SOURCES:
        return {"source": spec.source, "summary": "a named dataset: nothing skipped", "splits": {}}
    root = Path(spec.source)
    report = {"source": spec.source, "image_size": list(spec.image_size) if spec.image_size else None,
              "resize": spec.resize, "strict": spec.strict, "splits": {}}
    total = skipped_n = 0
    for s in folders.SPLITS:
        if not has_split(spec, s):
            continue
        fs = list_split(spec, s)
        listed = set(fs.files)
        failed = [(f, why) for f, why in decode_failures(spec, s) if f in listed]
        skipped = list(fs.skipped) + failed
        used = len(fs) - len(failed)
        report["splits"][s] = {"used": used, "skipped": [{"file": _rel(f, root), "reason": why}
                                                         for f, why in skipped]}
        total += len(fs) + len(fs.skipped)
        skipped_n += len(skipped)
    report["summary"] = f"skipped: {skipped_n:,} of {total:,}"
    return report


def _markdown(report: dict) -> str:
    lines = [f"# Data report: {report['source']}", "", f"**{report['summary']}** files "
             f"(image size {report.get('image_size') or 'as found'}, resize {report.get('resize', 'squash')})", ""]
    for s, r in report["splits"].items():
        lines += [f"## {s}: {r['used']:,} images used, {len(r['skipped'])} skipped", ""]
        if r["skipped"]:
            lines += ["| file | reason |", "|---|---|"]
            lines += [f"| `{x['file']}` | {x['reason']} |" for x in r["skipped"]]
            lines.append("")
    return "\n".join(lines) + "\n"


def write_data_report(spec: DataSpec, run_dir: str | Path) -> dict:
    """Write ``data_report.json``, ``data_report.md`` and ``split.json`` into ``run_dir`` (atomically).

    Returns:
        The report (:func:`data_report`).

    Raises:
        DataError: the dataset cannot be listed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir} is not a run directory")
    report = data_report(spec)
    write_json(run_dir / "data_report.json", report)
    write_text(run_dir / "data_report.md", _markdown(report))
    write_json(run_dir / "split.json", split_record(spec))
    return report


def check_split(spec: DataSpec, run_dir: str | Path) -> None:
    """Refuse when a folder split here (``ROOT/<class>/``) no longer splits as the run recorded.

    The flat layout's split is recomputed from the files on each load; images added to or
    removed from the folder after training reshuffle it, and a later stage (export's
    calibration, bench) could then use test images for calibration, or train images as test.
    A run without ``split.json`` (older runs, named datasets, split folders) is not checked.

    Raises:
        DataError: a file recorded in one split now lands in another (naming one, and how many).
    """
    record_path = Path(run_dir) / "split.json"
    if spec.source in NAMED_SOURCES or not record_path.is_file() or folders.layout(Path(spec.source)) != "flat":
        return
    import json

    record = json.loads(record_path.read_text())
    root = Path(spec.source)
    was = {f: s for s, r in record.get("splits", {}).items() for f in r["files"]}
    moved = []
    for s in ("train", "test"):
        for f in list_split(spec, s).files:
            rel = _rel(f, root)
            if rel in was and was[rel] != s:
                moved.append((rel, was[rel], s))
    if moved:
        rel, a, b = moved[0]
        raise DataError(f"{root} no longer splits as this run recorded in {record_path}: {rel} was {a}, is now {b} "
                        f"({len(moved)} file(s) moved, images were added or removed); train a new run on the "
                        "folder as it is, or restore it")
