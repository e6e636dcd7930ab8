"""Int8 within an accuracy budget: Keras layers kept in float, chosen by hand or by a search.

Selective quantization, the same way in both formats: the user names Keras layers
(``--float-layers conv2d_3,logits``); each is mapped to the nodes its format made of it and
those stay float32 (weights too), the rest int8.

* TFLite: the converter calibrates once (:func:`.tflite.calibrate_tflite`), then the MLIR
  quantizer runs with ``denylisted_nodes`` (what ``tf.lite.experimental.QuantizationDebugger``
  does). An operator's name is its output tensor's, e.g.
  ``resnet8/activation_2/Relu;resnet8/batch_normalization_2/FusedBatchNormV3;resnet8/conv2d_2/Conv2D``:
  a fused operator belongs to every layer it names.
* ONNX: ``quantize_static(nodes_to_exclude=...)``; tf2onnx names nodes ``resnet8/conv2d_2/Conv2D``
  and their outputs after the layer that ends there (``.../batch_normalization_2/FusedBatchNormV3:0``).

A name belongs to layer ``L`` when ``L`` is one of its path segments other than the last
(the TF op), so ``resnet8/add/add`` is layer ``add`` and nested models (imported runs) work.

``fallback="auto"`` (:func:`make_int8`): quantize with the given float layers, measure top-1
on a validation split (held-out training images, never the test split) against the float
Keras model; while over the budget, rank the remaining layers by drop-one sensitivity
(top-1 gained with that one layer added to float) and add the best one, re-ranking after each
of the first :data:`RERANKS` additions (once the layer that broke int8 is float, the others'
effects are different ones); every set measured on the way counts, the smallest that meets the
budget is kept and any of its layers the budget does not need is dropped again. If no mix meets the budget, the
closest is kept and the log says so. The log records each step, the test-split top-1, size and
batch-1 latency before (all int8) and after.
"""
from __future__ import annotations

import abc
import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import ConfigError, DataError

from .fidelity import drop_ci95_pts
from .variants import Job

LATENCY_RUNS = 200  # batch-1 predictions per file and round (two interleaved rounds)
RERANKS = 3  # drop-one rankings after additions; later additions follow the last ranking (cost: one file per layer)


@dataclass(frozen=True)
class Validation:
    """Held-out training images the search measures on, and where the float Keras model is right.

    Attributes:
        images: ``(N, H, W, C) uint8``; labels: ``(N,) int``;
        reference_correct: ``(N,) bool``, whether the float model's top-1 is right on each image.
    """

    images: np.ndarray
    labels: np.ndarray
    reference_correct: np.ndarray

    @property
    def reference_top1(self) -> float:
        """The float model's top-1, fraction 0-1."""
        return float(self.reference_correct.mean())


def validation_split(spec: DataSpec, calibration: np.ndarray, size: int, model) -> Validation:
    """The last ``size`` training images that are not calibration images, and Keras' top-1 on them.

    Args:
        spec: the run's dataset.
        calibration: ``(M, H, W, C) uint8`` calibration images (excluded by content).
        size: images wanted; fewer are used when the split is smaller.
        model: the float tf_keras model (the reference).

    Raises:
        DataError: no training image is left once the calibration images are excluded.
    """
    train = load_split(spec, "train")
    used = {hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in calibration}
    keep = [i for i in range(len(train.labels) - 1, -1, -1)
            if hashlib.blake2b(train.images[i].tobytes(), digest_size=16).digest() not in used][:size]
    if not keep:
        raise DataError("fallback auto needs training images besides those it calibrates with; none are left",
                        field="ExportConfig.fallback")
    keep = np.array(sorted(keep))
    x, y = train.images[keep], train.labels[keep]
    ref = model.predict(x.astype(np.float32), batch_size=256, verbose=0).argmax(1)
    return Validation(x, y, ref == y)


def keras_layers(model) -> list[str]:
    """Layer names of a tf_keras model in graph order, nested models' layers included (inputs excluded)."""
    names = []
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested Model (imported runs wrap the foreign one)
            names += keras_layers(layer)
        elif type(layer).__name__ != "InputLayer":
            names.append(layer.name)
    return names


def check_layers(model, wanted: tuple[str, ...]) -> None:
    """Raise ConfigError naming the first of ``wanted`` that is not a layer of ``model``."""
    known = keras_layers(model)
    for name in wanted:
        if name not in known:
            raise ConfigError(f"float_layers: the model has no layer {name!r}; its layers: "
                              f"{', '.join(known[:40])}{', ...' if len(known) > 40 else ''}",
                              field="ExportConfig.float_layers")


def layer_nodes(nodes: dict[str, list[str]], layers: list[str]) -> dict[str, list[str]]:
    """Keras layer -> the format's nodes that belong to it (see the module docstring).

    Args:
        nodes: node id -> the names that tell where it came from (its name, its outputs).
        layers: Keras layer names.
    """
    wanted = set(layers)
    out: dict[str, list[str]] = {}
    for node, names in nodes.items():
        owners = {seg for n in names for part in n.split(";") for seg in part.split("/")[:-1]} & wanted
        for layer in owners:
            out.setdefault(layer, []).append(node)
    return {layer: out[layer] for layer in layers if layer in out}


class _Writer(abc.ABC):
    """Writes one format's int8 file with some Keras layers in float; ``nodes`` maps layer -> nodes."""

    format = ""
    nodes: dict[str, list[str]]

    def float_nodes(self, layers) -> list[str]:
        """The format's nodes for ``layers``, each once, in node order.

        Raises:
            ConfigError: a layer that left no node of its own in this format.
        """
        for layer in layers:
            if layer not in self.nodes:
                raise ConfigError(f"float_layers: layer {layer!r} has no op of its own in the {self.format} "
                                  f"graph (folded or fused away); layers with ops: {', '.join(self.nodes)}",
                                  field="ExportConfig.float_layers")
        chosen = {n for layer in layers for n in self.nodes[layer]}
        return [n for n in dict.fromkeys(n for ns in self.nodes.values() for n in ns) if n in chosen]

    @abc.abstractmethod
    def write(self, path: Path, layers) -> None:
        """Write the int8 file at ``path`` with ``layers`` (Keras names) kept in float."""


class _TfliteWriter(_Writer):
    format = "TFLite"

    def __init__(self, job: Job, layers: list[str]):
        from .tflite import calibrate_tflite, op_names

        self.job = job
        self.calibrated = calibrate_tflite(job.model, job.calibration)
        self.nodes = layer_nodes({n: [n] for n in op_names(self.calibrated)}, layers)

    def write(self, path: Path, layers) -> None:
        from .tflite import quantize_calibrated

        quantize_calibrated(self.calibrated, path, io_dtype=self.job.io_dtype,
                            float_ops=tuple(self.float_nodes(layers)), labels=self.job.labels)


class _OnnxWriter(_Writer):
    format = "ONNX"

    def __init__(self, job: Job, layers: list[str]):
        import onnx

        self.job, self.float_path = job, job.sibling("onnx", "fp32")
        graph = onnx.load(str(self.float_path), load_external_data=False).graph
        self.nodes = layer_nodes({n.name: [n.name, *n.output] for n in graph.node}, layers)

    def write(self, path: Path, layers) -> None:
        from .onnx import quantize_onnx

        j = self.job
        quantize_onnx(self.float_path, path, calibration=j.calibration, labels=j.labels, method=j.calibration_method,
                      preset=j.onnx_preset, nodes_to_exclude=tuple(self.float_nodes(layers)))


_WRITERS = {"tflite": _TfliteWriter, "onnx": _OnnxWriter}


def _correct(path: Path, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,) bool``: whether the model file's top-1 is right on each image."""
    from edgesmith.runtime import load

    return load(path, target="cpu").predict(images).argmax(1) == labels


def _top1(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    return float(_correct(path, images, labels).mean())


class _Search:
    """Scores float-layer sets on the validation split; every file it writes is kept for the end."""

    def __init__(self, writer: _Writer, val: Validation, scratch: Path, order: list[str]):
        self.writer, self.val, self.scratch, self.order = writer, val, scratch, order
        self.files: dict[tuple[str, ...], Path] = {}
        self.drops: dict[tuple[str, ...], float] = {}
        self.correct: dict[tuple[str, ...], np.ndarray] = {}

    def key(self, layers) -> tuple[str, ...]:
        return tuple(sorted(set(layers), key=self.order.index))

    def drop(self, layers) -> float:
        """Top-1 lost on the validation split with ``layers`` in float, in points."""
        key = self.key(layers)
        if key not in self.drops:
            path = self.scratch / f"fallback_{len(self.files)}{Path(self.writer.job.path).suffix}"
            self.writer.write(path, key)
            self.correct[key] = _correct(path, self.val.images, self.val.labels)
            top1 = float(self.correct[key].mean())
            self.files[key], self.drops[key] = path, round(100 * (self.val.reference_top1 - top1), 3)
        return self.drops[key]

    def ci95(self, layers) -> float:
        """Half-width of the 95% CI of :meth:`drop`, in points."""
        return drop_ci95_pts(self.val.reference_correct, self.correct[self.key(layers)])


def _rank(s: _Search, current: tuple[str, ...]) -> tuple[list[str], dict[str, float]]:
    """The layers not in ``current``, by the top-1 each one gains on its own when added to it (drop-one sensitivity)."""
    gain = {layer: s.drop(current) - s.drop((*current, layer)) for layer in s.order if layer not in current}
    return sorted(gain, key=lambda layer: (-gain[layer], s.order.index(layer))), gain


def _greedy(s: _Search, start: tuple[str, ...], budget: float, log) -> tuple[tuple[str, ...], list[dict]]:
    """Add the layer that gains most, re-ranked after each of the first :data:`RERANKS` additions, until
    the budget holds; then drop the added layers the budget does not need."""
    steps = [{"step": "start", "float_layers": list(start), "validation_drop_pts": s.drop(start)}]
    current, ranked, added = start, [], []
    while s.drop(current) > budget:
        if len(added) <= RERANKS:
            ranked, gain = _rank(s, current)
            steps.append({"step": "rank", "float_layers": list(current),
                          "gain_pts": {layer: round(gain[layer], 3) for layer in ranked}})
        ranked = [layer for layer in ranked if layer not in current]
        if not ranked:
            break
        layer = ranked.pop(0)
        current = s.key((*current, layer))
        added.append(layer)
        steps.append({"step": "add", "layer": layer, "validation_drop_pts": s.drop(current)})
        log(f"    + {layer} in float: {s.drop(current):+.2f} pt lost on validation")
    met = [k for k in s.drops if s.drops[k] <= budget and set(start) <= set(k)]
    if not met:  # keep the closest, the fewest float layers among equals
        return min(s.drops, key=lambda k: (s.drops[k], len(k))), steps
    best = min(met, key=lambda k: (len(k), s.drops[k]))
    for layer in [x for x in reversed(s.order) if x in best and x not in start]:
        trial = s.key(x for x in best if x != layer)
        if s.drop(trial) <= budget:
            best = trial
            steps.append({"step": "remove", "layer": layer, "validation_drop_pts": s.drop(trial)})
    return best, steps


def _candidates(order: list[str], nodes: dict[str, list[str]]) -> list[str]:
    """Layers with nodes, in graph order, one per node set (a Conv, its BatchNorm and ReLU fused into
    one TFLite operator are one candidate, named by the first)."""
    seen, out = set(), []
    for layer in order:
        key = frozenset(nodes.get(layer, ()))
        if key and key not in seen:
            seen.add(key)
            out.append(layer)
    return out


def _p50_ms(paths: list[Path], image: np.ndarray) -> list[float]:
    """Batch-1 p50 latency (ms, 1 thread) of each file, timed in two interleaved rounds."""
    from edgesmith.runtime import load

    runners = [load(p, target="cpu", threads=1) for p in paths]
    times: list[list[float]] = [[] for _ in paths]
    for r in runners:
        for _ in range(20):
            r.predict(image)
    for _ in range(2):
        for r, t in zip(runners, times):
            for _ in range(LATENCY_RUNS // 2):
                started = time.perf_counter()
                r.predict(image)
                t.append((time.perf_counter() - started) * 1000)
    return [round(float(np.median(t)), 4) for t in times]


def _file_summary(path: Path, p50: float, verify: tuple[np.ndarray, np.ndarray]) -> dict:
    return {"test_top1": _top1(path, *verify), "bytes": path.stat().st_size, "p50_ms_batch1": p50}


def make_int8(job: Job, fmt: str, float_layers: tuple[str, ...], *, fallback: str = "off",
              budget: float | None = None, validation: Validation | None = None,
              verify: tuple[np.ndarray, np.ndarray] | None = None, log=lambda msg: None) -> dict:
    """Write ``job.path``: a PTQ int8 file with ``float_layers`` (and, with ``fallback="auto"``, the
    layers the search adds) in float32.

    Side effects: writes candidate files under ``job.scratch``; with ``auto``, times the
    all-int8 and the final file (batch 1, 1 thread, :data:`LATENCY_RUNS` runs each).

    Example::

        make_int8(job, "tflite", (), fallback="auto", budget=0.3, validation=val, verify=(x, y))

    Args:
        job: the int8 artifact's job (its model, calibration images, I/O type, ONNX preset).
        fmt: ``tflite`` or ``onnx``.
        float_layers: Keras layer names kept in float from the start.
        fallback: ``off`` or ``auto``.
        budget: top-1 points the file may lose against the float Keras model on ``validation``.
        validation: the split the search measures on (needed for ``auto``).
        verify: ``(images, labels)`` of the test split, for the before/after report only.
        log: called with one-line progress messages.

    Returns:
        ``{"float_layers": [...], "float_nodes": [...]}``, plus with ``auto`` ``"fallback"``: the
        search log (``met``, ``budget_pts``, ``validation_drop_pts`` and its 95% CI half-width
        ``validation_drop_ci95_pts``, ``validation_images``, ``steps``, ``before``/``after`` test
        top-1, bytes and p50 ms, ``seconds``).

    Raises:
        ConfigError: a layer that is not in the model or left no node in this format.
    """
    started = time.perf_counter()
    check_layers(job.model, float_layers)
    order = keras_layers(job.model)
    writer = _WRITERS[fmt](job, order)
    start = tuple(float_layers)
    out = {"float_layers": list(start), "float_nodes": writer.float_nodes(start)}
    if fallback != "auto":
        writer.write(job.path, start)
        return out
    s = _Search(writer, validation, Path(job.scratch), _candidates(order, writer.nodes))
    best, steps = _greedy(s, s.key(start), budget, log)
    shutil.copyfile(s.files[best], job.path)
    image = validation.images[:1]
    before, after = _p50_ms([s.files[s.key(start)], s.files[best]], image)
    out = {"float_layers": list(best), "float_nodes": writer.float_nodes(best)}
    out["fallback"] = {
        "met": s.drops[best] <= budget, "budget_pts": budget, "validation_drop_pts": s.drops[best],
        "validation_drop_ci95_pts": s.ci95(best),
        "validation_images": len(validation.labels), "validation_reference_top1": validation.reference_top1,
        "candidates": len(s.order), "files_tried": len(s.files), "steps": steps,
        "before": _file_summary(s.files[s.key(start)], before, verify),
        "after": _file_summary(Path(job.path), after, verify), "seconds": round(time.perf_counter() - started, 1)}
    return out


def format_fallback(name: str, rec: dict) -> list[str]:
    """Human-readable lines: what the search kept in float and what it cost."""
    fb = rec["fallback"]
    b, a = fb["before"], fb["after"]
    verdict = "met" if fb["met"] else "NOT met (closest kept)"
    head = (f"{name}: budget {fb['budget_pts']} pt {verdict} on {fb['validation_images']} validation images "
            f"({fb['validation_drop_pts']:+.2f} pt lost, 95% CI ±{fb['validation_drop_ci95_pts']:.2f} pt); "
            f"float layers: {', '.join(rec['float_layers']) or 'none'}")
    cost = (f"  test top-1 {b['test_top1']:.2%} -> {a['test_top1']:.2%}, {b['bytes'] / 1024:.1f} -> "
            f"{a['bytes'] / 1024:.1f} KiB, batch-1 p50 {b['p50_ms_batch1']:.3f} -> {a['p50_ms_batch1']:.3f} ms")
    return [head, cost]
