"""Per-layer diagnosis of an int8 artifact: where does quantization error enter?

For every activation tensor present in both the int8 file and its float counterpart,
the float and the dequantized int8 activations on the same images are compared:

* SNR in dB, ``10 log10(sum f^2 / sum (f - q)^2)`` (higher is better; below ~15 dB a
  layer usually costs accuracy), and
* cosine similarity of the flattened activations.

Errors accumulate along the network (cross-model error, as ONNX Runtime's
``qdq_loss_debug`` ``xmodel_err``), so the first layer with a sharp SNR drop is the
usual culprit. TFLite: LiteRT with ``experimental_preserve_all_tensors`` and the
builtin kernels (XNNPACK would hide intermediate tensors), matched by tensor name.
ONNX: ``onnxruntime.quantization.qdq_loss_debug`` on a QDQ model and its float source.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _metrics(f: np.ndarray, q: np.ndarray) -> dict:
    f, q = f.astype(np.float64).ravel(), q.astype(np.float64).ravel()
    noise = float(np.sum((f - q) ** 2))
    signal = float(np.sum(f ** 2))
    snr = 99.0 if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else -99.0)
    denom = np.linalg.norm(f) * np.linalg.norm(q)
    cos = float(f @ q / denom) if denom > 0 else (1.0 if noise == 0 else 0.0)
    return {"snr_db": round(float(snr), 2), "cosine": round(cos, 5)}


def _tflite_tensors(path: Path, images: np.ndarray) -> dict[str, tuple[np.ndarray, dict]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], [len(images), *images.shape[1:]], strict=False)
    it.allocate_tensors()
    scale, zp = inp["quantization"]
    dtype = np.dtype(inp["dtype"])
    if dtype.kind in "iu" and scale:
        info = np.iinfo(dtype)
        x = np.clip(np.rint(images.astype(np.float32) / scale) + zp, info.min, info.max).astype(dtype)
    else:
        x = images.astype(dtype)
    it.set_tensor(inp["index"], x)
    it.invoke()
    out = {}
    for d in it.get_tensor_details():
        if len(d["shape"]) < 2 or d["shape"][0] != len(images):
            continue  # weights and constants: only batch-shaped activations are compared
        try:
            out[d["name"]] = (it.get_tensor(d["index"]), d)
        except ValueError:
            continue
    return out


def diagnose_tflite(int8_path: str | Path, float_path: str | Path, images: np.ndarray) -> list[dict]:
    """Per-tensor SNR / cosine of an int8 ``.tflite`` against its float ``.tflite``.

    Args:
        images: ``(N, H, W, C) uint8`` pixels (a few dozen calibration images suffice).

    Returns:
        One dict per matched activation tensor, in graph order: ``layer``, ``snr_db``, ``cosine``.
    """
    floats = _tflite_tensors(Path(float_path), images)
    rows = []
    for name, (q, d) in _tflite_tensors(Path(int8_path), images).items():
        scale, zp = d["quantization"]
        if name not in floats or not scale or floats[name][0].shape != q.shape:
            continue
        deq = (q.astype(np.float32) - zp) * scale
        rows.append({"layer": name, **_metrics(floats[name][0], deq)})
    return rows


def diagnose_onnx(qdq_path: str | Path, float_path: str | Path, images: np.ndarray) -> list[dict]:
    """Per-tensor SNR / cosine of a QDQ ``.onnx`` against its float ``.onnx`` (qdq_loss_debug).

    Returns:
        As :func:`diagnose_tflite`; empty for a file without QDQ pairs to match.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (collect_activations, create_activation_matching,
                                                         modify_model_output_intermediate_tensors)

    def feeds(path) -> list[dict]:
        inp = onnx.load(str(path), load_external_data=False).graph.input[0]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        return [{inp.name: images[i:i + 16].astype(dtype)} for i in range(0, len(images), 16)]

    with tempfile.TemporaryDirectory() as scratch:
        acts = {}
        for key, src in (("float", float_path), ("qdq", qdq_path)):
            aug = str(Path(scratch) / f"{key}.onnx")
            modify_model_output_intermediate_tensors(str(src), aug)
            acts[key] = collect_activations(aug, feeds(src))
    matching = create_activation_matching(acts["qdq"], acts["float"])
    rows = []
    for name, m in matching.items():
        if "float" not in m or "post_qdq" not in m:
            continue
        f = np.concatenate([a.ravel() for a in m["float"]])
        q = np.concatenate([a.ravel() for a in m["post_qdq"]])
        rows.append({"layer": name, **_metrics(f, q)})
    return rows


def diagnose(int8_path: str | Path, float_path: str | Path, images: np.ndarray, *, worst: int = 5) -> dict:
    """Per-layer diagnosis of an int8 artifact, by suffix; never raises on odd graphs.

    Returns:
        ``{"layers": n matched, "worst": [rows with the lowest SNR, at most ``worst``],
        "images": N}``, or ``{"error": "..."}`` when nothing could be matched.
    """
    int8_path, float_path = Path(int8_path), Path(float_path)
    if not float_path.exists():
        return {"error": f"no float counterpart {float_path.name} to compare with"}
    try:
        fn = diagnose_tflite if int8_path.suffix == ".tflite" else diagnose_onnx
        rows = fn(int8_path, float_path, images)
    except Exception as e:  # diagnosis is advisory: report it, never hide the real failure
        return {"error": f"{type(e).__name__}: {e}"[:300]}
    if not rows:
        return {"error": "no activation tensors matched between the int8 and float files"}
    return {"layers": len(rows), "images": int(len(images)),
            "worst": sorted(rows, key=lambda r: r["snr_db"])[:worst], "all": rows}


def format_diagnosis(name: str, diag: dict) -> list[str]:
    """Human-readable lines: the worst layers of one artifact."""
    if "error" in diag:
        return [f"{name}: per-layer diagnosis unavailable ({diag['error']})"]
    lines = [f"{name}: worst of {diag['layers']} layers (float vs int8 activations, {diag['images']} images)"]
    lines += [f"  {r['snr_db']:7.2f} dB SNR  cosine {r['cosine']:.4f}  {r['layer'][:80]}" for r in diag["worst"]]
    return lines
