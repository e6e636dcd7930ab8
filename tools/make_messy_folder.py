"""Build a messy ``ROOT/<class>/`` photo folder, the way people keep their own images.

From real JPEGs (``--source DIR/<class>/*.jpg``, e.g. the shared CIFAR-10 copy) or, without a
source, from Pillow-drawn patterns (one learnable pattern per class), it writes:

* images upscaled to random sizes and aspect ratios (each side 48-360 px), saved as ``.jpg``,
  ``.JPG``, ``.jpeg``, ``.png`` and ``.webp`` in turn, about one in five in a sub-folder of its
  class (``<class>/more/``);
* junk: ``.DS_Store`` (top level and in a class), ``Thumbs.db``, ``notes.txt``, a hidden folder;
* a truncated JPEG (``IMG_9999.jpg``) and a zero-byte image (``empty.png``);
* ``dup_of_<name>``: an exact copy of an image that lands in the other split under edgesmith's
  default split (test share 0.2, split seed 0), i.e. a train/test leak for ``data inspect``.

Usage::

    python tools/make_messy_folder.py /tmp/messy --source ../shared/data/cifar10-jpeg/train \\
        --per-class 300 --seed 0
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FORMATS = ((".jpg", "JPEG"), (".JPG", "JPEG"), (".jpeg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"))
SIDES = (48, 360)
SYNTHETIC_CLASSES = ("circles", "hstripes", "vstripes")


def _pattern(cls: int, rng: np.random.Generator, side: int = 32) -> Image.Image:
    """A small RGB image of class ``cls``: horizontal/vertical stripes or a disc, random colours."""
    bg = tuple(int(v) for v in rng.integers(0, 120, 3))
    fg = tuple(int(v) for v in rng.integers(140, 256, 3))
    im = Image.new("RGB", (side, side), bg)
    d = ImageDraw.Draw(im)
    k = cls % 3
    step = int(rng.integers(4, 8))
    if k == 0:
        r = int(rng.integers(side // 4, side // 2 - 1))
        c = side // 2 + int(rng.integers(-3, 4))
        d.ellipse((c - r, c - r, c + r, c + r), fill=fg)
    else:
        for i in range(0, side, step * 2):
            d.rectangle((0, i, side, i + step - 1) if k == 1 else (i, 0, i + step - 1, side), fill=fg)
    noise = rng.normal(0, 12, (side, side, 3))
    return Image.fromarray(np.clip(np.asarray(im, np.float64) + noise, 0, 255).astype(np.uint8))


def _sources(source: Path | None, per_class: int, classes, rng) -> dict[str, list]:
    """class -> ``per_class`` base images (Pillow, RGB)."""
    if source is None:
        return {name: [_pattern(c, rng) for _ in range(per_class)] for c, name in enumerate(classes)}
    out = {}
    for name in classes:
        files = sorted((source / name).glob("*.jpg"))
        if len(files) < per_class:
            raise SystemExit(f"{source / name} has {len(files)} JPEGs, fewer than --per-class {per_class}")
        pick = rng.choice(len(files), size=per_class, replace=False)
        out[name] = [Image.open(files[i]).convert("RGB") for i in sorted(pick)]
    return out


def make_messy_folder(out: str | Path, *, source: str | Path | None = None, per_class: int = 10,
                      seed: int = 0, classes: tuple[str, ...] | None = None) -> dict:
    """Write the messy folder (see the module docstring) at ``out``, replacing it.

    Args:
        out: the folder to create (``ROOT``); an existing one is removed first.
        source: ``DIR`` with ``DIR/<class>/*.jpg``; ``None`` draws patterns instead.
        per_class: images per class (before the junk, the bad files and the duplicate).
        seed: picks source images, sizes, formats, sub-folders.
        classes: which class folders of ``source`` (default: all of them; 3 pattern classes
            without a source).

    Returns:
        What was written: ``{"root", "classes", "images", "junk", "bad", "duplicate",
        "nested", "formats"}`` (paths as strings; ``images`` counts the readable images,
        the duplicate included).
    """
    out, rng = Path(out), np.random.default_rng(seed)
    if source is not None:
        source = Path(source)
        classes = classes or tuple(sorted(p.name for p in source.iterdir() if p.is_dir()))
    classes = tuple(classes or SYNTHETIC_CLASSES)
    bases = _sources(source, per_class, classes, rng)
    if out.exists():
        shutil.rmtree(out)
    written, nested, formats = [], [], {}
    n = 0
    for name in classes:
        for j, base in enumerate(bases[name]):
            w, h = (int(v) for v in rng.integers(SIDES[0], SIDES[1] + 1, 2))
            suffix, fmt = FORMATS[n % len(FORMATS)]
            n += 1
            folder = out / name / ("more" if rng.random() < 0.2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"img_{j:04d}{suffix}"
            base.resize((w, h), Image.Resampling.BICUBIC).save(path, format=fmt, quality=92)
            written.append(path)
            formats[suffix] = formats.get(suffix, 0) + 1
            if folder.name == "more":
                nested.append(path)
    first, second = out / classes[0], out / classes[min(1, len(classes) - 1)]
    junk = [out / ".DS_Store", first / ".DS_Store", second / "Thumbs.db", first / "notes.txt",
            first / ".thumbnails" / "cache.jpg"]
    for p in junk:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\0\1junk\n" if p.suffix != ".txt" else b"shot on my phone, 2024\n")
    truncated, empty = first / "IMG_9999.jpg", second / "empty.png"
    whole = (out / "whole.tmp")
    bases[classes[0]][0].resize((200, 150)).save(whole, format="JPEG", quality=92)
    data = whole.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    whole.unlink()
    empty.write_bytes(b"")
    dup = _leaky_duplicate(out, classes[-1], [p for p in written if p.parent.name == classes[-1]])
    return {"root": str(out), "classes": list(classes), "images": len(written) + 1,
            "junk": [str(p) for p in junk], "bad": [str(truncated), str(empty)], "duplicate": [str(p) for p in dup],
            "nested": [str(p) for p in nested], "formats": formats}


def _leaky_duplicate(root: Path, name: str, candidates: list[Path]) -> tuple[Path, Path]:
    """Copy one image of class ``name`` to ``dup_of_<file>`` so that the copy and the original fall
    in different splits under the default split (which depends on paths only)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from edgesmith.core.folders import list_folder_split

    copy = root / name / "dup_of_image.jpg"
    copy.write_bytes(candidates[0].read_bytes())  # placeholder: the split is fixed by the path
    test = set(list_folder_split(root, "test").files)
    in_test = copy in test
    original = next(p for p in candidates if (p in test) != in_test)
    copy.write_bytes(original.read_bytes())
    return original, copy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--source", type=Path, help="DIR/<class>/*.jpg (default: drawn patterns, 3 classes)")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    info = make_messy_folder(args.out, source=args.source, per_class=args.per_class, seed=args.seed)
    print(json.dumps({k: v if not isinstance(v, list) or len(v) < 8 else f"{len(v)} files"
                      for k, v in info.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
