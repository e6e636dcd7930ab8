"""Options and the import step of "bring your own model" (:mod:`edgesmith.importer`).

Shared by ``edgesmith export MODEL_FILE`` and ``edgesmith pipeline --model-file``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgesmith.importer import OUTPUTS, PREPROCESS

from ._common import choice_enum, out

Preprocess = choice_enum("Preprocess", PREPROCESS)
Outputs = choice_enum("Outputs", OUTPUTS)

DataImportOpt = Annotated[Optional[str], typer.Option("--data", "-d", help="Model files only: the dataset "
                          "('synthetic', 'cifar10' or a train/ test/ class-folder directory) to measure and "
                          "calibrate on.")]
LabelsOpt = Annotated[Optional[Path], typer.Option(help="Model files only: class names, one per line, in the "
                      "model's output order [default: the dataset's class folders].")]
PreprocessOpt = Annotated[Preprocess, typer.Option(help="Model files only: what the model expects - none (0-255), "
                          "scale01 (x/255), minus1to1 (x/127.5-1), imagenet (torch mean/std); added to the model "
                          "so artifacts take raw uint8 pixels.")]
OutputsOpt = Annotated[Outputs, typer.Option(help="Model files only: auto, logits (a softmax is appended) or "
                       "probabilities.")]
TrustOpt = Annotated[bool, typer.Option("--trust-model-code", help="Model files only: accept Lambda layers and "
                     "custom objects, i.e. run code from the file. Only for files from people you trust.")]
ImportOutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Model files only: run directory to "
                         "create [default: `runs/import-<name>-<timestamp>`].")]
PREPROCESS_DEFAULT = Preprocess("none")
OUTPUTS_DEFAULT = Outputs("auto")


def run_import(path: Path, data: str | None, labels: Path | None = None, *, preprocess="none", outputs="auto",
               trust_model_code: bool = False, out_dir: Path | None = None, overwrite: bool = False,
               **dataset) -> Path:
    """The run directory ``path`` is or becomes (:func:`edgesmith.importer.resolve_run`); prints an import.

    ``dataset`` holds ``limit_train``, ``limit_test`` and ``seed`` for an import, and the data options
    of ``train`` (``image_size`` as ``"H"`` or ``"HxW"``, ``resize``, ``test_split``, ``strict_data``).
    """
    from edgesmith.core.data import parse_image_size
    from edgesmith.importer import import_summary, resolve_run

    if dataset.get("image_size"):
        dataset["image_size"] = parse_image_size(dataset["image_size"])
    if "resize" in dataset:
        dataset["resize"] = getattr(dataset["resize"], "value", dataset["resize"])
    if "strict_data" in dataset:
        dataset["strict"] = dataset.pop("strict_data")

    run, imported = resolve_run(path, data=data, labels=labels, preprocess=getattr(preprocess, "value", preprocess),
                                outputs=getattr(outputs, "value", outputs), trust_model_code=trust_model_code,
                                out=out_dir, overwrite=overwrite, **dataset)
    if imported:
        out.print(import_summary(path, run))
    return run.root
