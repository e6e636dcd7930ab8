"""Per-operator time profiles of exported artifacts (``edgesmith bench --profile``).

* ONNX Runtime: the built-in profiler (``SessionOptions.enable_profiling``); kernel times
  per node of the *optimized* graph, summed per op type, so fusions (QLinearConv, Conv
  with fused Add/ReLU) and layout Transposes are visible.
* LiteRT: the Python interpreter exposes no per-op timer, and XNNPACK runs the whole
  delegated graph as one fused node. The equivalent we report: the converted op list,
  whether XNNPACK took the graph, and the split of a call between ``set_tensor``,
  ``invoke`` and ``get_tensor`` versus the Runner's own overhead.

No TensorFlow here: artifacts run through :mod:`edgesmith.runtime` and the backends.
"""
from __future__ import annotations

import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable
from edgesmith.core.fsutil import write_json, write_text
from edgesmith.core.rundir import RunDir, load_manifest, verify_file
from edgesmith.core.runlock import locks_run
from edgesmith.runtime import load
from edgesmith.runtime.base import to_model_input


def _sample(runner, n: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, *runner.input_spec.shape), dtype=np.uint8)


def _median_us(fn, runs: int) -> float:
    out = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        fn(i)
        out[i] = (time.perf_counter_ns() - t0) / 1e3
    return float(np.median(out))


def profile_onnx(path: str | Path, *, threads: int = 1, runs: int = 200) -> dict:
    """Kernel time per op type (µs per batch-1 run, mean over ``runs``) from ONNX Runtime's profiler.

    Returns:
        ``{"backend", "threads", "runs", "kernel_us", "predict_p50_us", "ops": [{"op", "us",
        "nodes", "share"}...] (slowest first), "nodes": [{"name", "op", "us"}...]}``.
    """
    runner = load(path, device="cpu", threads=threads)  # BackendUnavailable, naming the extra, without ORT
    import onnxruntime as ort

    x = to_model_input(_sample(runner), runner.input_spec)
    warmup = 20
    with tempfile.TemporaryDirectory() as scratch:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(scratch, "ort")
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for i in range(warmup + runs):
            sess.run(None, {name: x[i % len(x)][None]})
        events = json.loads(Path(sess.end_profiling()).read_text())
    seen: collections.Counter = collections.Counter()
    kernels = []
    for e in events:  # chronological; each node's first `warmup` runs are the warm-up
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            seen[e["name"]] += 1
            if seen[e["name"]] > warmup:
                kernels.append(e)
    per_op, per_node = collections.defaultdict(float), collections.defaultdict(float)
    for e in kernels:
        op, node = e["args"]["op_name"], e["name"][: -len("_kernel_time")]
        per_op[op] += e["dur"]
        per_node[(node, op)] += e["dur"]
    nodes_per_op = collections.Counter(op for (_, op) in per_node)
    total = sum(per_op.values()) / runs
    ops = [{"op": op, "us": round(us / runs, 2), "nodes": nodes_per_op[op], "share": round(us / runs / total, 4)}
           for op, us in sorted(per_op.items(), key=lambda kv: -kv[1])]
    predict = _median_us(lambda i: runner.predict(_sample(runner)[i % 32][None]), runs)
    return {"backend": "onnxruntime", "threads": threads, "runs": runs, "kernel_us": round(total, 2),
            "predict_p50_us": round(predict, 2), "ops": ops,
            "nodes": [{"name": n, "op": op, "us": round(us / runs, 2)}
                      for (n, op), us in sorted(per_node.items(), key=lambda kv: -kv[1])]}


def profile_litert(path: str | Path, *, threads: int = 1, runs: int = 200) -> dict:
    """Converted op list, XNNPACK coverage and the time split of one batch-1 call (µs, medians).

    Returns:
        ``{"backend", "threads", "runs", "ops": [{"op", "count"}], "delegated": bool,
        "phases_us": {"set_tensor", "invoke", "get_tensor"}, "predict_p50_us"}``.
    """
    from ai_edge_litert.interpreter import Interpreter

    runner = load(path, device="cpu", threads=threads)
    images = _sample(runner)
    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    details = interp._get_ops_details()  # public API has no op list; this is the documented debug hook
    names = [d["op_name"] for d in details]
    delegated = "DELEGATE" in names
    ops = collections.Counter(n for n in names if n != "DELEGATE")
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = to_model_input(images, runner.input_spec)
    if tuple(inp["shape"][:1]) != (1,):
        interp.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
        interp.allocate_tensors()
    for i in range(20):
        interp.set_tensor(inp["index"], x[i % len(x)][None])
        interp.invoke()
    phases = {"set_tensor": _median_us(lambda i: interp.set_tensor(inp["index"], x[i % len(x)][None]), runs),
              "invoke": _median_us(lambda i: interp.invoke(), runs),
              "get_tensor": _median_us(lambda i: interp.get_tensor(out["index"]), runs)}
    for i in range(20):
        runner.predict(images[i % len(images)][None])
    predict = _median_us(lambda i: runner.predict(images[i % len(images)][None]), runs)
    return {"backend": "litert", "threads": threads, "runs": runs,
            "ops": [{"op": k, "count": v} for k, v in ops.most_common()], "delegated": delegated,
            "phases_us": {k: round(v, 2) for k, v in phases.items()}, "predict_p50_us": round(predict, 2)}


def _markdown(profiles: dict[str, dict]) -> str:
    lines = ["# Per-operator profiles", ""]
    for name, p in profiles.items():
        if "skipped" in p:
            lines += [f"## {name}", "", f"Not profiled: {p['skipped']}", ""]
            continue
        lines.append(f"## {name} ({p['backend']}, {p['threads']} thread(s), {p['runs']} batch-1 runs)")
        lines.append("")
        if p["backend"] == "onnxruntime":
            lines += [f"Kernel time {p['kernel_us']:.1f} µs per run; Runner.predict p50 {p['predict_p50_us']:.1f} µs.",
                      "", "| op (optimized graph) | nodes | µs/run | share |", "|---|---:|---:|---:|"]
            lines += [f"| {o['op']} | {o['nodes']} | {o['us']:.1f} | {o['share']:.0%} |" for o in p["ops"]]
        else:
            ph = p["phases_us"]
            lines += [f"XNNPACK delegate: {'yes (the ops below run as one fused node)' if p['delegated'] else 'no'}. "
                      f"set_tensor {ph['set_tensor']:.1f} µs, invoke {ph['invoke']:.1f} µs, get_tensor "
                      f"{ph['get_tensor']:.1f} µs; Runner.predict p50 {p['predict_p50_us']:.1f} µs.",
                      "", "| op | count |", "|---|---:|"]
            lines += [f"| {o['op']} | {o['count']} |" for o in p["ops"]]
        lines.append("")
    return "\n".join(lines)


@locks_run("bench --profile")
def write_profiles(run_dir: str | Path, *, threads: int = 1, runs: int = 200) -> list[Path]:
    """Profile every artifact of a run; write ``RUN/bench/profiles/<artifact>.json`` and ``profiles.md``.

    An artifact whose runtime is not installed (e.g. ``.onnx`` without the ``[onnx]`` extra) is
    listed in ``profiles.md`` as not profiled, with the reason, and gets no JSON file.

    Side effects: holds the run's lock (:func:`edgesmith.core.runlock.run_lock`) while it writes.

    Returns:
        The paths written. Raises RunDirError (via the manifest helpers) for a run
        without artifacts or with changed files.
    """
    run = RunDir(run_dir)
    manifest = load_manifest(run)
    out_dir = run.bench / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    profiles, paths = {}, []
    for art in manifest.get("artifacts", []):
        path = verify_file(run, art)
        fn = profile_onnx if art["format"] == "onnx" else profile_litert
        try:
            profiles[art["name"]] = fn(path, threads=threads, runs=runs)
        except BackendUnavailable as e:
            profiles[art["name"]] = {"skipped": str(e)}
            continue
        paths.append(out_dir / f"{art['name']}.json")
        write_json(paths[-1], profiles[art["name"]])
    paths.append(out_dir / "profiles.md")
    write_text(paths[-1], _markdown(profiles))
    return paths
