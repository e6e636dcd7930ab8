"""``edgesmith pipeline``: train -> export -> bench in one command (what `make demo` runs)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgesmith.benchmarks.presets import BENCH_PRESETS
from edgesmith.export import ExportConfig
from edgesmith.train import config as tc

from ._common import errors
from .bench_cmd import PresetName, RunsOpt, TargetOpt, ThreadsOpt, WarmupOpt, run_bench
from .export_cmd import CalibOpt, run_export
from .import_opts import (OUTPUTS_DEFAULT, PREPROCESS_DEFAULT, LabelsOpt, OutputsOpt, PreprocessOpt,
                          TrustOpt, run_import)
from .train_cmd import (BatchOpt, ClassWeight, ClassWeightOpt, DataOpt, EpochsOpt, ImageSizeOpt, LimitTestOpt, LimitTrainOpt, LrOpt, ModelOpt,
                        OutOpt, OverwriteOpt, Precision, PrecisionOpt, Resize, ResizeOpt, SeedOpt, StreamOpt, StrictDataOpt,
                        TestSplitOpt, build_config, run_train)

_Q = BENCH_PRESETS["quick"]
BenchPresetOpt = Annotated[PresetName, typer.Option(
    help="Bench settings for the bench step (see `edgesmith bench --help`); the options below override "
         "single values of it.")]
BenchBatchOpt = Annotated[Optional[str], typer.Option(
    help=f"Batch sizes to benchmark: 1 = latency, larger = throughput [preset default: "
         f"{','.join(map(str, _Q['batches']))}].")]
BenchSecondsOpt = Annotated[Optional[float], typer.Option(
    help=f"Seconds of interleaved batch-1 timing in the bench step [preset default: {_Q['seconds']:g}].")]


def pipeline_cmd(data: DataOpt, model: ModelOpt = tc.default("model"), epochs: EpochsOpt = tc.default("epochs"),
                 batch_size: BatchOpt = tc.default("batch_size"), lr: LrOpt = None,
                 precision: PrecisionOpt = Precision(tc.default("precision")),
                 limit_train: LimitTrainOpt = None, limit_test: LimitTestOpt = None, seed: SeedOpt = 0,
                 image_size: ImageSizeOpt = None, resize: ResizeOpt = Resize("squash"), test_split: TestSplitOpt = None,
                 strict_data: StrictDataOpt = False,
                 class_weight: ClassWeightOpt = ClassWeight(tc.default("class_weight")),
                 stream: StreamOpt = tc.default("stream"),
                 out_dir: OutOpt = None, overwrite: OverwriteOpt = False, 
                 calibration_size: CalibOpt = ExportConfig().calibration_size,
                 bench_preset: BenchPresetOpt = PresetName("quick"), threads: ThreadsOpt = None,
                 runs: RunsOpt = None, warmup: WarmupOpt = None, target: TargetOpt = None,
                 bench_batch: BenchBatchOpt = None, bench_seconds: BenchSecondsOpt = None,
                 model_file: Annotated[Optional[Path], typer.Option(help="Skip training: import this model "
                                       "(.keras, .h5, SavedModel dir) instead; see `export --help`.")] = None,
                 labels: LabelsOpt = None, preprocess: PreprocessOpt = PREPROCESS_DEFAULT,
                 outputs: OutputsOpt = OUTPUTS_DEFAULT,
                 trust_model_code: TrustOpt = False):
    """Train, export and benchmark in one go (what `make demo` runs)."""
    with errors():
        if model_file is not None:  # bring your own model (edgesmith.importer) instead of training
            root = run_import(model_file, data, labels, preprocess, outputs, trust_model_code, out_dir, overwrite,
                              limit_train=limit_train, limit_test=limit_test, seed=seed)
        else:
            config = build_config(data, limit_train=limit_train, limit_test=limit_test, seed=seed, model=model,
                                  epochs=epochs, batch_size=batch_size, lr=lr, precision=precision,
                                  image_size=image_size, resize=resize, test_split=test_split,
                                  strict_data=strict_data, class_weight=class_weight, stream=stream)
            root = run_train(config, out_dir, overwrite).root
        run_export(root, calibration_size)
        run_bench(root, bench_preset.value, threads=threads, runs=runs, warmup=warmup, target=target,
                  batches=bench_batch, seconds=bench_seconds)
