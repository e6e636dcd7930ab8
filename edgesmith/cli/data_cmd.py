"""``edgesmith data preview DATA``: a PNG grid of samples per class, and the class counts."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from ._common import errors, out

data_app = typer.Typer(help="Look at a dataset before training on it.", no_args_is_help=True)


def preview_grid(images: np.ndarray, labels: np.ndarray, class_names, *, per_class: int = 8, scale: int = 2,
                 seed: int = 0):
    """A Pillow image: one row per class (name on the left), ``per_class`` random samples each.

    Args:
        images: ``(N, H, W, C) uint8`` with C = 1 or 3.
        labels: ``(N,) int`` class indices into ``class_names``.
        scale: integer upscaling of each sample (nearest neighbour), for small images.
    """
    from PIL import Image, ImageDraw

    h, w = images.shape[1] * scale, images.shape[2] * scale
    label_w, pad = 110, 2
    grid = Image.new("RGB", (label_w + per_class * (w + pad), len(class_names) * (h + pad)), "white")
    draw = ImageDraw.Draw(grid)
    rng = np.random.default_rng(seed)
    for c, name in enumerate(class_names):
        idx = np.flatnonzero(labels == c)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        y = c * (h + pad)
        draw.text((4, y + h // 2 - 6), f"{name[:14]} ({len(idx)})", fill="black")
        for j, i in enumerate(pick):
            img = images[i][..., 0] if images.shape[-1] == 1 else images[i]
            tile = Image.fromarray(img).convert("RGB").resize((w, h), Image.NEAREST)
            grid.paste(tile, (label_w + j * (w + pad), y))
    return grid


@data_app.command("preview")
def preview_cmd(data: Annotated[str, typer.Argument(help="'cifar10', 'synthetic', or a directory of class "
                                                     "folders (`train/<class>/` + `test/<class>/`, or `<class>/` "
                                                     "alone, split as training would; see docs/data.md).")],
                split: Annotated[str, typer.Option(help="Which split to show: train, val or test.")] = "train",
                per_class: Annotated[int, typer.Option(help="Samples shown per class.")] = 8,
                out_png: Annotated[Optional[Path], typer.Option("--out", "-o", help="PNG to write "
                                                                "[default: `data-preview-<split>.png`].")] = None,
                seed: Annotated[int, typer.Option(help="Chooses the samples shown.")] = 0,
                image_size: Annotated[Optional[str], typer.Option(help="Decode to H or HxW px, as `train "
                                                                  "--image-size` (needed for images of mixed "
                                                                  "sizes).", metavar="H[xW]")] = None,
                resize: Annotated[str, typer.Option(help="squash, crop or pad, as `train --resize`.")] = "squash"):
    """Write a PNG grid of sample images per class and print the class counts."""
    from edgesmith.core.data import DataSpec, load_split, parse_image_size
    from edgesmith.core.errors import ConfigError
    from edgesmith.core.fsutil import atomic_path

    with errors():
        if per_class < 1:
            raise ConfigError(f"--per-class must be >= 1, got {per_class}")
        s = load_split(DataSpec(data, image_size=parse_image_size(image_size) if image_size else None,
                                resize=resize), split)
        counts = np.bincount(s.labels, minlength=len(s.class_names))
        table = Table(title=f"{data} ({split}): {len(s)} images, {s.image_shape[1]}x{s.image_shape[0]}x"
                            f"{s.image_shape[2]}")
        table.add_column("class")
        table.add_column("images", justify="right")
        table.add_column("share", justify="right")
        for name, n in zip(s.class_names, counts):
            table.add_row(name, f"{n:,}", f"{n / len(s):.1%}")
        out.print(table)
        path = out_png or Path(f"data-preview-{split}.png")
        with atomic_path(path) as tmp:
            preview_grid(s.images, s.labels, s.class_names, per_class=per_class, seed=seed).save(tmp, format="PNG")
        out.print(f"preview -> {path}")


def _print_inspection(r: dict) -> None:
    """The human view of :func:`edgesmith.core.datareport.inspect_folder`'s dict."""
    from ._common import err

    splits = list(r["splits"])
    out.print(f"{r['root']}: {r['images']:,} images of {r['files']:,} files, {len(r['classes'])} classes, "
              f"layout {r['layout']} ({r['split_rule']})")
    table = Table(title="images per class")
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    for name in r["classes"]:
        table.add_row(name, *(f"{r['splits'][s]['class_counts'].get(name, 0):,}" for s in splits))
    table.add_row("[bold]all[/]", *(f"[bold]{r['splits'][s]['images']:,}[/]" for s in splits))
    out.print(table)
    if r["imbalance"] is not None:
        out.print(f"imbalance (largest / smallest class, train): {r['imbalance']:g}")
    sizes = r["sizes"]
    out.print(f"sizes: {sizes['distinct']:,} distinct, smallest {sizes['min'][0]}x{sizes['min'][1]}, largest "
              f"{sizes['max'][0]}x{sizes['max'][1]} (W x H)" if sizes["min"] else "sizes: no readable image")
    for b in sizes["histogram"]:
        out.print(f"  longer side {b['longer_side_px']:>10} px: {b['images']:,}")
    out.print("formats: " + ", ".join(f"{k} {v:,}" for k, v in r["formats"].items()) +
              " (suffixes: " + ", ".join(f"{k} {v:,}" for k, v in r["suffixes"].items()) + ")")
    out.print(f"skipped: {len(r['skipped']):,} of {r['files']:,} files")
    for x in r["skipped"][:30]:
        out.print(f"  {x['file']}: {x['reason']}")
    if len(r["skipped"]) > 30:
        out.print(f"  ... {len(r['skipped']) - 30:,} more (--json lists all)")
    within = [d for d in r["duplicates"] if not d["across_splits"]]
    out.print(f"exact duplicates: {len(within)} group(s) within a split, {len(r['leaks'])} across splits")
    for d in r["duplicates"][:20]:
        out.print(f"  {' = '.join(d['files'])} ({', '.join(d['splits'])})")
    if r["leaks"]:
        err.print(f"[bold yellow]warning:[/] {len(r['leaks'])} image(s) appear in more than one split "
                  "(train/test leak): the test figures would overstate accuracy; remove one copy of each",
                  highlight=False)


@data_app.command("inspect")
def inspect_cmd(root: Annotated[Path, typer.Argument(help="A folder of class folders: `ROOT/{train,[val,]test}/"
                                                     "<class>/` or `ROOT/<class>/` (split as training would).")],
                test_split: Annotated[Optional[float], typer.Option(help="The test share training would hold "
                                                                    "out of a `ROOT/<class>/` folder [default: 0.2].")]
                = None,
                seed: Annotated[int, typer.Option(help="The split seed training would use (its --seed).")] = 0,
                as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON on stdout.")]
                = False):
    """Class counts per split, image sizes, formats, skipped files, duplicates and leaks, imbalance."""
    import json

    from edgesmith.core.datareport import inspect_folder

    with errors():
        report = inspect_folder(root, test_split=test_split, split_seed=seed)
        if as_json:
            print(json.dumps(report, indent=1))
        else:
            _print_inspection(report)
