"""``edgesmith pipeline``: train -> export -> bench in one command (what `make demo` runs)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .bench_cmd import RunsOpt, TargetOpt, ThreadsOpt, WarmupOpt, run_bench
from ._common import Target, errors
from .export_cmd import CalibOpt, run_export
from .import_opts import LabelsOpt, OutputsOpt, PreprocessOpt, TrustOpt, run_import
from edgesmith.train import config as tc

from .train_cmd import (BatchOpt, DataOpt, EpochsOpt, LimitTestOpt, LimitTrainOpt, LrOpt, ModelOpt, OutOpt,
                        OverwriteOpt, Precision, PrecisionOpt, SeedOpt, build_config, run_train)

BenchBatchOpt = Annotated[str, typer.Option(help="Batch sizes to benchmark: 1 = latency, larger = throughput.")]
BenchSecondsOpt = Annotated[float, typer.Option(
    help="Seconds of interleaved batch-1 timing in the bench step (`edgesmith bench` defaults to 30).")]


def pipeline_cmd(data: DataOpt, model: ModelOpt = tc.default("model"), epochs: EpochsOpt = tc.default("epochs"),
                 batch_size: BatchOpt = tc.default("batch_size"), lr: LrOpt = None,
                 precision: PrecisionOpt = Precision(tc.default("precision")),
                 limit_train: LimitTrainOpt = None, limit_test: LimitTestOpt = None, seed: SeedOpt = 0,
                 out_dir: OutOpt = None, overwrite: OverwriteOpt = False, calibration_size: CalibOpt = 256,
                 threads: ThreadsOpt = "1", runs: RunsOpt = 200, warmup: WarmupOpt = 50,
                 target: TargetOpt = Target.cpu, bench_batch: BenchBatchOpt = "1,64",
                 bench_seconds: BenchSecondsOpt = 10.0,
                 model_file: Annotated[Optional[Path], typer.Option(help="Skip training: import this model "
                                       "(.keras, .h5, SavedModel dir) instead; see `export --help`.")] = None,
                 labels: LabelsOpt = None, preprocess: PreprocessOpt = "none", outputs: OutputsOpt = "auto",
                 trust_model_code: TrustOpt = False):
    """Train, export and benchmark in one go (what `make demo` runs)."""
    with errors():
        if model_file is not None:  # bring your own model (export/byom.py) instead of training
            root = run_import(model_file, data, labels, preprocess, outputs, trust_model_code, out_dir, overwrite,
                              limit_train=limit_train, limit_test=limit_test, seed=seed)
        else:
            config = build_config(data, limit_train=limit_train, limit_test=limit_test, seed=seed, model=model,
                                  epochs=epochs, batch_size=batch_size, lr=lr, precision=precision)
            root = run_train(config, out_dir, overwrite).root
        run_export(root, calibration_size)
        run_bench(root, threads, runs, warmup, None, target, batches=bench_batch, seconds=bench_seconds)
