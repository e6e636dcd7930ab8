"""Benchmark suite: accuracy, latency, throughput and memory of every artifact on every runtime.

``bench(RUN, bench_config("default"))`` measures a run, writes ``RUN/bench/`` and records the
stage; :data:`BENCH_PRESETS` names the standard configurations (``default``, ``quick``,
``int8-speed``). No TensorFlow in this package's import path (the Keras reference runtime runs
in a child process) and no matplotlib until a plot is drawn.
"""
from .compare import compare_reports, gate_failures, load_results
from .env import environment
from .presets import BENCH_PRESETS, bench_config, format_threads, parse_threads
from .report import comparisons, markdown, write_reports
from .stats import latency_summary, p50_noise_ms
from .schema import RESULTS_SCHEMA
from .session import bench
from .suite import BenchConfig, bench_run
from .runtimes import RUNTIMES, detect_runtimes, resolve_runtimes

__all__ = ["bench", "bench_run", "BenchConfig", "bench_config", "BENCH_PRESETS", "parse_threads",
           "format_threads", "RESULTS_SCHEMA", "write_reports", "markdown", "comparisons",
           "latency_summary", "p50_noise_ms", "compare_reports", "gate_failures", "load_results",
           "environment", "RUNTIMES", "detect_runtimes", "resolve_runtimes"]
