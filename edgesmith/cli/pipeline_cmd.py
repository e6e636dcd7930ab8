"""``edgesmith pipeline``: train -> export -> bench in one command (what `make demo` runs).

Parses the options into a :class:`edgesmith.optimize.pipeline.PipelineConfig`, runs it and prints
each stage's outcome; the order of the stages is the library's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgesmith.benchmarks.presets import BENCH_PRESETS
from edgesmith.export import ExportConfig
from edgesmith.train import config as tc

from ._common import errors, note_run, out
from .bench_cmd import (DeviceKindOpt, OldTargetOpt, PresetName, RunsOpt, RuntimeOpt, ThreadsOpt, WarmupOpt,
                        print_bench, runtimes_of)
from .export_cmd import CalibOpt, print_export, print_parity_failure
from .import_opts import OUTPUTS_DEFAULT, PREPROCESS_DEFAULT, LabelsOpt, OutputsOpt, PreprocessOpt, TrustOpt
from .train_cmd import (BatchOpt, ClassWeight, ClassWeightOpt, DataOpt, EpochsOpt, ImageSizeOpt, LimitTestOpt, LimitTrainOpt, LrOpt, ModelOpt,
                        OutOpt, OverwriteOpt, Precision, PrecisionOpt, Resize, ResizeOpt, SeedOpt, StreamOpt, StrictDataOpt,
                        TestSplitOpt, build_config, print_trained)

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
                 runs: RunsOpt = None, warmup: WarmupOpt = None, runtime: RuntimeOpt = None,
                 device_kind: DeviceKindOpt = None, old_target: OldTargetOpt = None,
                 bench_batch: BenchBatchOpt = None, bench_seconds: BenchSecondsOpt = None,
                 model_file: Annotated[Optional[Path], typer.Option(help="Skip training: import this model "
                                       "(.keras, .h5, SavedModel dir) instead; see `export --help`.")] = None,
                 labels: LabelsOpt = None, preprocess: PreprocessOpt = PREPROCESS_DEFAULT,
                 outputs: OutputsOpt = OUTPUTS_DEFAULT,
                 trust_model_code: TrustOpt = False):
    """Train, export and benchmark in one go (what `make demo` runs)."""
    with errors():
        from edgesmith.benchmarks import bench_config
        from edgesmith.optimize.pipeline import ModelImport, PipelineConfig

        bench = bench_config(bench_preset.value, threads=threads, runs=runs, warmup=warmup,
                             runtimes=runtimes_of(runtime, device_kind, old_target=old_target), batches=bench_batch,
                             seconds=bench_seconds)
        source = {}
        if model_file is not None:  # bring your own model (edgesmith.importer) instead of training
            from edgesmith.core.data import parse_image_size

            source["model_import"] = ModelImport(
                model_file, data, labels, preprocess.value, outputs.value, trust_model_code, limit_train, limit_test,
                seed, image_size=parse_image_size(image_size) if image_size else None, resize=resize.value,
                test_split=test_split, strict=strict_data)
        else:
            source["train"] = build_config(data, limit_train=limit_train, limit_test=limit_test, seed=seed,
                                           model=model, epochs=epochs, batch_size=batch_size, lr=lr,
                                           precision=precision, image_size=image_size, resize=resize,
                                           test_split=test_split, strict_data=strict_data,
                                           class_weight=class_weight, stream=stream)
        config = PipelineConfig(ExportConfig(calibration_size=calibration_size), bench, out=out_dir,
                                overwrite=overwrite, **source)
        _run(config, model_file)


def _run(config, model_file: Path | None) -> None:
    """Run the pipeline, printing each stage's outcome as it ends (as train, export and bench do)."""
    from edgesmith.core.errors import ParityError
    from edgesmith.core.rundir import RunDir
    from edgesmith.optimize import pipeline

    def stage_done(stage: str, result) -> None:
        if stage == "train":
            print_trained(RunDir(result.run) if result.run else None)
        elif stage == "import" and result.imported:
            from edgesmith.importer import import_summary

            out.print(import_summary(model_file, RunDir(result.run)))
        elif stage == "export":
            print_export(result.artifacts)
        elif stage == "bench":
            print_bench(result.bench, result.report_files)
        if stage in ("train", "import") and result.run:
            note_run(result.run)  # a crash from here on is logged in RUN/logs

    try:
        pipeline.run_pipeline(config, say=lambda line: out.print(line, highlight=False, markup=False),
                              on_stage=stage_done)
    except ParityError as e:
        print_parity_failure(e)
        raise
