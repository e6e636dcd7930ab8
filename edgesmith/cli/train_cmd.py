"""``edgesmith train``: options shared with ``pipeline``, and the command itself."""
from __future__ import annotations

import datetime as _dt
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import errors, out


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


DataOpt = Annotated[str, typer.Option("--data", "-d", help="'cifar10' (Keras download), 'synthetic', "
                                      "or a directory with train/<class>/ and test/<class>/ image folders.")]
ModelOpt = Annotated[str, typer.Option(help="Architecture: resnet8 (MLPerf Tiny) or cnn (TF tutorial).")]
EpochsOpt = Annotated[int, typer.Option(help="Training epochs.")]
BatchOpt = Annotated[int, typer.Option(help="Training batch size.")]
LrOpt = Annotated[float, typer.Option("--lr", help="Peak Adam learning rate (1-epoch warm-up, cosine decay).")]
PrecisionOpt = Annotated[Precision, typer.Option(help="auto: fp16 on CUDA, bf16 on AMX/AVX512-BF16 CPUs, else fp32.")]
LimitTrainOpt = Annotated[Optional[int], typer.Option(help="Use at most N training images (class-balanced).")]
LimitTestOpt = Annotated[Optional[int], typer.Option(help="Use at most N test images (class-balanced).")]
SeedOpt = Annotated[int, typer.Option(help="Random seed (weights, shuffling, subsets).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to create "
                                                "[default: runs/<model>-<timestamp>].")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace --out if it exists.")]


def run_train(data: str, model: str, epochs: int, batch_size: int, lr: float, precision: Precision,
              limit_train: int | None, limit_test: int | None, seed: int, out_dir: Path | None,
              overwrite: bool):
    """Build the TrainConfig, train, print the result; returns the RunDir."""
    from edgesmith.core.data import DataSpec
    from edgesmith.train import TrainConfig, train

    config = TrainConfig(DataSpec(data, limit_train, limit_test, seed), model=model, epochs=epochs,
                         batch_size=batch_size, learning_rate=lr, precision=precision.value, seed=seed)
    out_dir = out_dir or Path("runs") / f"{model}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    run = train(config, out_dir, overwrite=overwrite)
    m = json.loads(run.metrics.read_text())
    out.print(f"trained {model} -> {run.root}: test top-1 {m['top1']:.2%} ({m['train_seconds']:.0f} s, "
              f"{m['train_img_per_s']:.0f} img/s, {m['precision_policy']})")
    return run


def train_cmd(data: DataOpt, model: ModelOpt = "resnet8", epochs: EpochsOpt = 10, batch_size: BatchOpt = 128,
              lr: LrOpt = 3e-3, precision: PrecisionOpt = Precision.auto, limit_train: LimitTrainOpt = None,
              limit_test: LimitTestOpt = None, seed: SeedOpt = 0, out_dir: OutOpt = None,
              overwrite: OverwriteOpt = False):
    """Train a model and write a run directory (model.keras, history, curves, metrics, manifest)."""
    with errors():
        run_train(data, model, epochs, batch_size, lr, precision, limit_train, limit_test, seed, out_dir,
                  overwrite)
