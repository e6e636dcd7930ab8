"""The Cortex-M target: a full-integer int8 TFLite file checked under TensorFlow Lite Micro itself.

``edgesmith export RUN --target cortex-m`` makes the ``int8-micro`` TFLite variant: per-channel
int8 weights, int8 activations and, unlike the desktop ``int8`` file, int8 input and output
(TFLite Micro deprecated uint8 I/O). The model folds its ``Rescaling`` into the first conv, so its
input is raw pixels 0-255 and the converter's input quantization comes out as scale 1, zero
point -128 whenever the representative images span 0-255: a uint8 pixel ``p`` goes in as the
int8 ``p - 128``. The scale and zero point are recorded (and written to the C header) either way.

What is checked, in this order, by the TFLite Micro Python interpreter (``tflite-micro``, the
``[mcu]`` extra) and LiteRT's reference kernels:

1. ops (:func:`model_ops`, :func:`check_ops`): every builtin op and version read from the
   flatbuffer; an op TFLite Micro's ``MicroMutableOpResolver`` has no ``Add*`` method for fails the
   export at once, naming the op;
2. arena (:func:`measure_arena`): the ``RecordingMicroAllocator`` report (``print_allocations``,
   written to the C-level stderr and read back through a file-descriptor redirect), confirmed by
   running the model in an arena of exactly that size. It is measured on this 64-bit host: the
   tail (persistent structures, pointers) is smaller on a 32-bit MCU, while CMSIS-NN kernels ask
   for scratch buffers the reference kernels do not (:func:`arena_budget` adds them);
3. outputs (:func:`verify_micro`): top-1 under TFLite Micro on the verification images, and its
   top-1 agreement and bit-exactness against LiteRT's reference kernels
   (``OpResolverType.BUILTIN_REF``), which TFLite Micro's kernels mirror; the agreement with
   LiteRT's default kernels is recorded too (XNNPACK differs by a few LSB, so it is not the yardstick).

The C sources for a TFLite Micro project are written by :mod:`.micro_csrc`.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable, ConfigError, ParityError

from .variants import Job, Variant

MICRO_VARIANT = "int8-micro"
EXTRA = "pip install 'edgesmith[mcu]'"
# Builtin ops with a MicroMutableOpResolver::Add* method (tensorflow/tflite-micro,
# tensorflow/lite/micro/micro_mutable_op_resolver.h); the method is the CamelCase name unless
# listed in _METHODS.
_SUPPORTED = """ABS ADD ADD_N ARG_MAX ARG_MIN AVERAGE_POOL_2D BATCH_TO_SPACE_ND CAST CEIL CONCATENATION
CONV_2D COS CUMSUM DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE ELU EQUAL EXP EXPAND_DIMS FILL FLOOR
FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF
L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC
MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE REDUCE_MAX RELU RELU6
RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR ROUND RSQRT SHAPE SIN SOFTMAX SPACE_TO_BATCH_ND
SPACE_TO_DEPTH SPLIT SPLIT_V SQUEEZE SQRT SQUARE STRIDED_SLICE SUB SVDF TANH TRANSPOSE_CONV TRANSPOSE
UNPACK ZEROS_LIKE ASSIGN_VARIABLE BROADCAST_ARGS BROADCAST_TO CALL_ONCE MIRROR_PAD READ_VARIABLE SLICE
VAR_HANDLE UNIDIRECTIONAL_SEQUENCE_LSTM WHILE SELECT_V2 BATCH_MATMUL DIV LOG_SOFTMAX SQUARED_DIFFERENCE SUM
EMBEDDING_LOOKUP REVERSE_V2""".split()
_METHODS = {"CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "AVERAGE_POOL_2D": "AddAveragePool2D",
            "MAX_POOL_2D": "AddMaxPool2D", "L2_POOL_2D": "AddL2Pool2D", "PADV2": "AddPadV2", "CUMSUM": "AddCumSum",
            "BATCH_MATMUL": "AddBatchMatMul", "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM"}
RESOLVER_METHODS = {op: _METHODS.get(op, "Add" + "".join(w.capitalize() for w in op.split("_")))
                    for op in _SUPPORTED}
# RAM beyond the measured arena that arena_budget() adds: 10% for the allocator's alignment and
# a different TFLite Micro version, on top of the CMSIS-NN scratch buffers it computes.
ARENA_MARGIN = 0.10


def require_tflm():
    """The ``tflite_micro.runtime`` module.

    Raises:
        BackendUnavailable: the ``[mcu]`` extra is not installed.
    """
    try:
        from tflite_micro import runtime
    except ImportError:
        raise BackendUnavailable(f"the cortex-m target runs the model under TFLite Micro: {EXTRA}") from None
    return runtime


def model_ops(flatbuffer: bytes) -> list[dict]:
    """Every builtin op of the main graph with its version and count, in first-use order.

    Args:
        flatbuffer: a ``.tflite`` model.

    Returns:
        ``[{"op": "CONV_2D", "version": 3, "count": 7, "resolver": "AddConv2D" | None}, ...]``;
        custom ops are named ``CUSTOM:<name>``; ``resolver`` is ``None`` where TFLite Micro has no
        ``MicroMutableOpResolver`` method for the op.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    found: dict[tuple[str, int], dict] = {}
    for op in model.subgraphs[0].operators or ():
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = names.get(builtin, f"#{builtin}")
        if name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = f"CUSTOM:{custom}"
        key = (name, int(code.version))
        entry = found.setdefault(key, {"op": name, "version": key[1], "count": 0,
                                       "resolver": RESOLVER_METHODS.get(name)})
        entry["count"] += 1
    return list(found.values())


def check_ops(ops: list[dict], path: str | Path = "the model") -> None:
    """Fail when TFLite Micro cannot run an op.

    Raises:
        ConfigError: one line naming every unsupported op and version.
    """
    bad = [f"{o['op']} (v{o['version']})" for o in ops if o["resolver"] is None]
    if bad:
        raise ConfigError(f"{Path(path).name} uses op(s) TFLite Micro does not implement: {', '.join(bad)}; "
                          "it cannot run on a microcontroller (replace those layers, or keep them in float "
                          "on a CPU target)")


@contextlib.contextmanager
def _captured_fd2():
    """What native code writes to file descriptor 2 meanwhile: yields a list that holds the text afterwards."""
    sys.stderr.flush()
    text: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text.append(caught.read().decode(errors="replace"))


def _interpreter(flatbuffer: bytes, arena: int):
    """A TFLite Micro interpreter over ``arena`` bytes (what it prints on failure is in the error)."""
    runtime = require_tflm()
    with _captured_fd2():  # a failed allocation is printed on stderr and raised: keep the raise
        try:
            return runtime.Interpreter.from_bytes(flatbuffer, arena_size=arena)
        except RuntimeError as e:
            why = " ".join(str(e).split())[:300]
    raise ConfigError(f"TFLite Micro cannot prepare the model in a {arena}-byte arena: {why}")


def _runs_in(flatbuffer: bytes, arena: int, x: np.ndarray) -> bool:
    runtime = require_tflm()
    with _captured_fd2():
        try:
            interp = runtime.Interpreter.from_bytes(flatbuffer, arena_size=arena)
            interp.set_input(x, 0)
            interp.invoke()
        except RuntimeError:
            return False
    return True


_REPORT = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def measure_arena(flatbuffer: bytes) -> dict:
    """The tensor arena TFLite Micro needs for the model on this (64-bit) host, in bytes.

    Runs the model once in a generous arena and reads the ``RecordingMicroAllocator`` report;
    the total is then confirmed by running in an arena of exactly that size (if that fails,
    the smallest size that runs is found by bisection and reported instead).

    Returns:
        ``{"bytes", "head_bytes", "tail_bytes", "method"}``: head = the activation plan
        (tensors that live between ops), tail = persistent structures (larger on 64 bits).

    Raises:
        BackendUnavailable: no ``tflite-micro``. ConfigError: the model cannot be prepared.
    """
    generous = max(16 * len(flatbuffer), 8 << 20)
    interp = _interpreter(flatbuffer, generous)
    detail = interp.get_input_details(0)
    x = np.zeros(tuple(int(d) for d in detail["shape"]), detail["dtype"])
    interp.set_input(x, 0)
    interp.invoke()
    with _captured_fd2() as report:
        interp.print_allocations()
    sizes = {k: int(v) for k, v in _REPORT.findall(report[0])}
    total = sizes.get("total")
    if total is not None and _runs_in(flatbuffer, total, x):
        return {"bytes": total, "head_bytes": sizes.get("head"), "tail_bytes": sizes.get("tail"),
                "method": "RecordingMicroAllocator report, confirmed by a run in exactly that arena"}
    lo, hi = 0, generous  # lo fails, hi runs
    while hi - lo > 16:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _runs_in(flatbuffer, mid, x) else (mid, hi)
    return {"bytes": hi, "head_bytes": sizes.get("head"), "tail_bytes": sizes.get("tail"),
            "method": "bisection over arena_size (16-byte steps)"}


def cmsis_scratch_bytes(flatbuffer: bytes) -> int:
    """The largest scratch buffer CMSIS-NN's int8 conv kernels ask for (the reference kernels ask none).

    CMSIS-NN's ``arm_convolve_s8`` im2col buffer is ``2 * Cin * Kh * Kw`` int16 values and the
    depthwise kernel's ``Cin * Kh * Kw`` int16 (Cortex-M4/M7 DSP path; an upper bound for the
    others); one op's scratch is live at a time, so the largest one counts.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    graph = model.subgraphs[0]
    op = schema.BuiltinOperator
    largest = 0
    for node in graph.operators or ():
        code = model.operatorCodes[node.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin not in (op.CONV_2D, op.DEPTHWISE_CONV_2D):
            continue
        inp = [int(d) for d in graph.tensors[node.inputs[0]].shape]
        ker = [int(d) for d in graph.tensors[node.inputs[1]].shape]
        kh, kw = ker[1], ker[2]
        values = 2 * inp[-1] * kh * kw if builtin == op.CONV_2D else inp[-1] * kh * kw
        largest = max(largest, 2 * values)
    return largest


def arena_budget(arena: dict, flatbuffer: bytes) -> dict:
    """What to give ``kTensorArenaSize`` on a device: the measured arena, CMSIS-NN scratch, a margin.

    Returns:
        ``{"measured_bytes", "cmsis_nn_scratch_bytes", "margin", "recommended_bytes", "caveat"}``;
        the recommendation is rounded up to 16 bytes.
    """
    scratch = cmsis_scratch_bytes(flatbuffer)
    need = arena["bytes"] + scratch
    recommended = int(-(-int(need * (1 + ARENA_MARGIN)) // 16) * 16)
    return {"measured_bytes": arena["bytes"], "cmsis_nn_scratch_bytes": scratch, "margin": ARENA_MARGIN,
            "recommended_bytes": recommended,
            "caveat": ("measured on a 64-bit host with TFLite Micro's reference kernels: a 32-bit MCU needs less "
                       "for the tail (pointers are half the size), CMSIS-NN kernels add their scratch buffers; "
                       f"recommended = (measured + CMSIS-NN scratch) x {1 + ARENA_MARGIN:g}")}


def io_quantization(flatbuffer: bytes) -> dict:
    """Input and output tensor dtype, shape, scale and zero point, as TFLite Micro reads them.

    Returns:
        ``{"input": {"dtype", "shape", "scale", "zero_point"}, "output": {...}}``.
    """
    interp = _interpreter(flatbuffer, max(16 * len(flatbuffer), 8 << 20))

    def one(d: dict) -> dict:
        q = d["quantization_parameters"]
        return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]],
                "scale": float(q["scales"][0]) if len(q["scales"]) else None,
                "zero_point": int(q["zero_points"][0]) if len(q["zero_points"]) else None}

    return {"input": one(interp.get_input_details(0)), "output": one(interp.get_output_details(0))}


def quantize_pixels(images: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``(N, H, W, C) uint8`` pixels -> the int8 input tensor: ``clip(round(p / scale) + zero_point)``
    (``p - 128`` for scale 1, zero point -128)."""
    q = np.round(images.astype(np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def run_tflm(flatbuffer: bytes, x: np.ndarray, arena: int) -> np.ndarray:
    """Raw int8 outputs ``(N, K)`` of TFLite Micro for int8 inputs ``x`` ``(N, H, W, C)``, one image per invoke."""
    interp = _interpreter(flatbuffer, arena)
    outs = []
    for i in range(len(x)):
        interp.set_input(x[i:i + 1], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(outs) if outs else np.zeros((0, 0), np.int8)


def run_litert(path: str | Path, x: np.ndarray, *, reference: bool) -> np.ndarray:
    """Raw int8 outputs ``(N, K)`` of LiteRT: its default kernels (XNNPACK) or, with ``reference``, its
    reference kernels (``OpResolverType.BUILTIN_REF``, one thread)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interp = Interpreter(model_path=str(path), experimental_op_resolver_type=kind, num_threads=1)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outs, batch = [], None
    for i in range(0, len(x), 256):
        chunk = x[i:i + 256]
        if len(chunk) != batch:
            interp.resize_tensor_input(inp["index"], [len(chunk), *x.shape[1:]], strict=False)
            interp.allocate_tensors()
            batch = len(chunk)
        interp.set_tensor(inp["index"], chunk)
        interp.invoke()
        outs.append(interp.get_tensor(out["index"]).reshape(len(chunk), -1).copy())
    return np.concatenate(outs)


def verify_micro(path: str | Path, images: np.ndarray, labels: np.ndarray, *, arena: int,
                 min_agreement: float = 0.99) -> dict:
    """Run the file under TFLite Micro and compare it with LiteRT on every image.

    The yardstick is LiteRT's reference kernels (``OpResolverType.BUILTIN_REF``), which TFLite
    Micro's kernels mirror: the two should agree bit for bit. LiteRT's default kernels (XNNPACK)
    round differently and differ by a few LSB, enough to flip near-ties (1-2% of CIFAR-10 test
    images for a 3-epoch ResNet-8), so their agreement is recorded but does not gate the export.

    Args:
        path: an int8-I/O ``.tflite`` file.
        images: ``(N, H, W, C) uint8`` test images; labels: ``(N,)`` their classes.
        arena: tensor arena in bytes (:func:`measure_arena`).
        min_agreement: top-1 agreement with LiteRT's reference kernels below which the export fails.

    Returns:
        ``{"n", "top1", "litert_top1", "top1_agreement" (with LiteRT's default kernels), "exact": {"n",
        "bit_exact", "max_lsb", "top1_agreement", "against"}}`` (``exact``: against the reference kernels).

    Raises:
        ParityError: TFLite Micro's top-1 agrees with LiteRT's reference kernels on fewer than ``min_agreement``.
    """
    flatbuffer = Path(path).read_bytes()
    q = io_quantization(flatbuffer)["input"]
    x = quantize_pixels(images, q["scale"], q["zero_point"])
    micro = run_tflm(flatbuffer, x, arena)
    litert = run_litert(path, x, reference=False)
    ref = run_litert(path, x, reference=True)
    diff = np.abs(micro.astype(np.int32) - ref.astype(np.int32))
    n = len(x)
    rec = {"n": int(n), "top1": float((micro.argmax(1) == labels).mean()),
           "litert_top1": float((litert.argmax(1) == labels).mean()),
           "top1_agreement": float((micro.argmax(1) == litert.argmax(1)).mean()),
           "exact": {"n": int(n), "bit_exact": int((diff.max(1) == 0).sum()) if n else 0,
                     "max_lsb": int(diff.max()) if n else 0,
                     "top1_agreement": float((micro.argmax(1) == ref.argmax(1)).mean()) if n else 1.0,
                     "against": "LiteRT reference kernels (OpResolverType.BUILTIN_REF)"}}
    if rec["exact"]["top1_agreement"] < min_agreement:
        raise ParityError(f"{Path(path).name}: TFLite Micro's top-1 agrees with LiteRT's reference kernels on only "
                          f"{rec['exact']['top1_agreement']:.1%} of {n} test images (minimum {min_agreement:.0%}); "
                          "not written")
    return rec


def check_micro(path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str], *,
                out_dir: Path, log=lambda msg: None) -> dict:
    """Everything the export records for a Cortex-M file, and its C sources in ``out_dir``.

    Returns:
        ``{"ops", "arena", "io", "verify", "c_sources"}`` for the manifest's artifact record
        (``c_sources``: file names in ``out_dir``).

    Raises:
        BackendUnavailable, ConfigError, ParityError: see :func:`measure_arena`, :func:`check_ops`,
        :func:`verify_micro`.
    """
    from .micro_csrc import write_sources

    flatbuffer = path.read_bytes()
    ops = model_ops(flatbuffer)
    check_ops(ops, path)
    arena = _arena_record(flatbuffer)
    io = io_quantization(flatbuffer)
    verify = verify_micro(path, images, labels, arena=arena["bytes"])
    files = write_sources(out_dir, flatbuffer, ops=ops, labels=class_names, io=io,
                          arena_bytes=arena["recommended_bytes"], measured_arena=arena["bytes"])
    log(f"  {path.name} under TFLite Micro: top-1 {verify['top1']:.2%} (LiteRT {verify['litert_top1']:.2%}, "
        f"agreement {verify['top1_agreement']:.1%}; {verify['exact']['bit_exact']:,}/{verify['exact']['n']:,} "
        f"bit-exact with LiteRT's reference kernels, top-1 agreement {verify['exact']['top1_agreement']:.1%}), arena {arena['bytes']:,} B on this 64-bit host "
        f"(recommended {arena['recommended_bytes']:,} B), ops {', '.join(o['op'] for o in ops)}")
    return {"ops": ops, "arena": arena, "io": io, "verify": verify, "c_sources": [f.name for f in files],
            "tflite_micro": _tflm_version()}


def _arena_record(flatbuffer: bytes) -> dict:
    measured = measure_arena(flatbuffer)
    return {**measured, **arena_budget(measured, flatbuffer)}


def _tflm_version() -> str | None:
    try:
        from tflite_micro import __version__
    except ImportError:  # pragma: no cover - checked before
        return None
    return __version__


def _convert(job: Job) -> None:
    from .tflite import to_tflite

    to_tflite(job.model, job.path, precision="int8", representative=job.calibration, io_dtype="int8",
              labels=job.labels)
    check_ops(model_ops(job.path.read_bytes()), job.path)  # before any other work on the file


def _describe(job: Job) -> str:
    ranges = "QAT ranges" if job.qat else f"PTQ, representative dataset of {len(job.calibration)} training images"
    return f"full-integer int8 for TFLite Micro (Cortex-M): per-channel weights, int8 I/O, {ranges}"


VARIANTS = (Variant("tflite", MICRO_VARIANT, "int8", "int8_micro", _convert, _describe),)
