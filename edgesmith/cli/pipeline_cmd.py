"""``edgesmith pipeline``: train -> export -> bench in one command (what `make demo` runs)."""
from __future__ import annotations

from .bench_cmd import RunsOpt, TargetOpt, ThreadsOpt, WarmupOpt, run_bench
from ._common import Target, errors
from .export_cmd import CalibOpt, run_export
from .train_cmd import (BatchOpt, DataOpt, EpochsOpt, LimitTestOpt, LimitTrainOpt, LrOpt, ModelOpt, OutOpt,
                        OverwriteOpt, Precision, PrecisionOpt, SeedOpt, run_train)


def pipeline_cmd(data: DataOpt, model: ModelOpt = "resnet8", epochs: EpochsOpt = 10,
                 batch_size: BatchOpt = 128, lr: LrOpt = 3e-3, precision: PrecisionOpt = Precision.auto,
                 limit_train: LimitTrainOpt = None, limit_test: LimitTestOpt = None, seed: SeedOpt = 0,
                 out_dir: OutOpt = None, overwrite: OverwriteOpt = False, calibration_size: CalibOpt = 256,
                 threads: ThreadsOpt = "1", runs: RunsOpt = 500, warmup: WarmupOpt = 50,
                 target: TargetOpt = Target.cpu):
    """Train, export and benchmark in one go (what `make demo` runs)."""
    with errors():
        run = run_train(data, model, epochs, batch_size, lr, precision, limit_train, limit_test, seed,
                        out_dir, overwrite)
        run_export(run.root, calibration_size)
        run_bench(run.root, threads, runs, warmup, None, target)
