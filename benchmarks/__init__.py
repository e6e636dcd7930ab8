"""Benchmark suite: accuracy and latency of every artifact through the runtime. No TensorFlow."""
from .report import comparisons, write_reports
from .stats import latency_summary
from .suite import BenchConfig, bench_run

__all__ = ["BenchConfig", "bench_run", "write_reports", "comparisons", "latency_summary"]
