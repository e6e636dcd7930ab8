"""The ``edgesmith`` command line: thin commands that build a config and call the library.

Only :class:`~edgesmith.core.errors.EdgesmithError` is turned into a one-line message and
exit code 1; anything else is a bug and keeps its traceback. TensorFlow is imported only
by the commands that need it, so ``--help``, ``bench`` and ``predict`` start quickly and
work on a runtime-only install.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgesmith.core.errors import ConfigError, EdgesmithError

app = typer.Typer(help="Train, quantize, export, run and benchmark image classifiers for edge devices.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# A pipe or CI log gets a wide console so tables are not truncated to 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


class Target(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn edgesmith's own errors into ``error: ...`` on stderr and exit code 1."""
    try:
        yield
    except EdgesmithError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from None


# Options shared by train and pipeline
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
ThreadsOpt = Annotated[str, typer.Option(help="Comma-separated intra-op thread counts to benchmark.")]
RunsOpt = Annotated[int, typer.Option(help="Timed batch-1 runs per artifact and thread count.")]
WarmupOpt = Annotated[int, typer.Option(help="Untimed warm-up runs before timing.")]
TargetOpt = Annotated[Target, typer.Option(help="Runtime target: cpu, gpu, or auto (GPU when available).")]
CalibOpt = Annotated[int, typer.Option(help="Training images in the int8 representative dataset.")]


def _train(data, model, epochs, batch_size, lr, precision, limit_train, limit_test, seed, out_dir, overwrite):
    from edgesmith.core.data import DataSpec
    from edgesmith.train import TrainConfig, train

    config = TrainConfig(DataSpec(data, limit_train, limit_test, seed), model=model, epochs=epochs,
                         batch_size=batch_size, learning_rate=lr, precision=precision.value, seed=seed)
    out_dir = out_dir or Path("runs") / f"{model}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    run = train(config, out_dir, overwrite=overwrite)
    import json

    metrics = json.loads(run.metrics.read_text())
    out.print(f"trained {model} -> {run.root}: test top-1 {metrics['top1']:.2%} "
              f"({metrics['train_seconds']:.0f} s, {metrics['train_img_per_s']:.0f} img/s, "
              f"{metrics['precision_policy']})")
    return run


def _export(run_dir: Path, calibration_size: int):
    from edgesmith.export import ExportConfig, export

    records = export(run_dir, ExportConfig(calibration_size=calibration_size))
    for r in records:
        f = r["fidelity"]
        out.print(f"exported {r['file']} ({r['bytes'] / 1024:.1f} KiB): top-1 {f['top1']:.2%}, "
                  f"agrees with Keras on {f['top1_agreement']:.1%} of {f['n']} test images")


def _bench(run_dir: Path, threads: str, runs: int, warmup: int, limit_test, target: Target):
    from edgesmith.benchmarks import BenchConfig, bench_run, write_reports

    config = BenchConfig(threads=_int_list(threads, "--threads"), runs=runs, warmup=warmup,
                         limit_test=limit_test, target=target.value)
    from edgesmith.core.rundir import RunDir, load_manifest, now_iso, save_manifest

    run = RunDir(run_dir)
    report = bench_run(run, config)
    paths = write_reports(report, run.bench)
    manifest = load_manifest(run)
    manifest["stages"]["bench"] = {"finished": now_iso(), "reports": [f"bench/{p.name}" for p in paths.values()]}
    save_manifest(run, manifest)
    _print_report(report)
    out.print(f"reports: {', '.join(str(p) for p in paths.values())}")


def _print_report(report: dict) -> None:
    table = Table(title=f"{report['run']}: batch-1 latency, top-1 on {report['config']['n_test']} test images")
    for col in ("artifact", "target", "threads", "top-1", "p50 ms", "p90 ms", "p99 ms", "KiB"):
        table.add_column(col, justify="left" if col in ("artifact", "target") else "right")
    for r in report["results"]:
        lat = r["latency_ms"]
        table.add_row(r["artifact"], r["target"], str(r["threads"]), f"{r['top1']:.2%}", f"{lat['p50']:.3f}",
                      f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", f"{r['bytes'] / 1024:.1f}")
    out.print(table)
    for c in report.get("comparisons", []):
        out.print(f"  {c['verdict']}")


@app.command("train")
def train_cmd(data: DataOpt, model: ModelOpt = "resnet8", epochs: EpochsOpt = 10, batch_size: BatchOpt = 128,
              lr: LrOpt = 3e-3, precision: PrecisionOpt = Precision.auto, limit_train: LimitTrainOpt = None,
              limit_test: LimitTestOpt = None, seed: SeedOpt = 0, out_dir: OutOpt = None,
              overwrite: OverwriteOpt = False):
    """Train a model and write a run directory (model.keras, history, curves, metrics, manifest)."""
    with _errors():
        _train(data, model, epochs, batch_size, lr, precision, limit_train, limit_test, seed, out_dir, overwrite)


@app.command("export")
def export_cmd(run_dir: Annotated[Path, typer.Argument(help="Run directory made by `edgesmith train`.")],
               calibration_size: CalibOpt = 256):
    """Export a run to float32 and int8 TFLite and ONNX, each verified against the Keras model."""
    with _errors():
        _export(run_dir, calibration_size)


@app.command("bench")
def bench_cmd(run_dir: Annotated[Path, typer.Argument(help="Run directory with exported artifacts.")],
              threads: ThreadsOpt = "1", runs: RunsOpt = 500, warmup: WarmupOpt = 50,
              limit_test: LimitTestOpt = None, target: TargetOpt = Target.cpu):
    """Benchmark every artifact: top-1 on the test split, batch-1 latency p50/p90/p99, size."""
    with _errors():
        _bench(run_dir, threads, runs, warmup, limit_test, target)


@app.command("pipeline")
def pipeline_cmd(data: DataOpt, model: ModelOpt = "resnet8", epochs: EpochsOpt = 10,
                 batch_size: BatchOpt = 128, lr: LrOpt = 3e-3, precision: PrecisionOpt = Precision.auto,
                 limit_train: LimitTrainOpt = None, limit_test: LimitTestOpt = None, seed: SeedOpt = 0,
                 out_dir: OutOpt = None, overwrite: OverwriteOpt = False, calibration_size: CalibOpt = 256,
                 threads: ThreadsOpt = "1", runs: RunsOpt = 500, warmup: WarmupOpt = 50,
                 target: TargetOpt = Target.cpu):
    """Train, export and benchmark in one go (what `make demo` runs)."""
    with _errors():
        run = _train(data, model, epochs, batch_size, lr, precision, limit_train, limit_test, seed,
                     out_dir, overwrite)
        _export(run.root, calibration_size)
        _bench(run.root, threads, runs, warmup, None, target)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
