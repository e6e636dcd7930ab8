"""Benchmark suite: accuracy, latency, throughput and memory of every artifact on every target.

No TensorFlow in this package's import path (the Keras reference target runs in a child process).
"""
from .compare import compare_reports, gate_failures, load_results
from .env import environment
from .report import comparisons, markdown, write_reports
from .stats import latency_summary, p50_noise_ms
from .suite import RESULTS_SCHEMA, BenchConfig, bench_run
from .targets import TARGETS, detect_targets, resolve_targets

__all__ = ["BenchConfig", "bench_run", "RESULTS_SCHEMA", "write_reports", "markdown", "comparisons",
           "latency_summary", "p50_noise_ms", "compare_reports", "gate_failures", "load_results",
           "environment", "TARGETS", "detect_targets", "resolve_targets"]
