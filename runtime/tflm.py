"""TFLite Micro on this host (the ``tflite-micro`` package, the ``[mcu]`` extra) for the Cortex-M file.

For accuracy only: the host build runs TFLite Micro's reference kernels on x86, so its time says
nothing about a microcontroller (``bench --board`` estimates that); the bench's ``tflm`` cell
shows no latency.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable, EdgesmithError

EXTRA = "pip install 'edgesmith[mcu]'"


@contextlib.contextmanager
def _quiet_fd2():
    """TFLite Micro prints its allocation report and failures on the C-level stderr: keep them off it."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class TflmRunner:
    """Runs a full-integer ``.tflite`` file (int8 or uint8 I/O) under the TFLite Micro interpreter, one
    image per ``invoke``.

    Args:
        path: the Cortex-M file (``export --target cortex-m``).
        arena_bytes: the tensor arena; default 16 x the file size, at least 8 MiB (the host has
            memory to spare; the exact arena is what export measured).

    Raises:
        BackendUnavailable: the ``[mcu]`` extra is not installed.
        EdgesmithError: TFLite Micro cannot prepare the model (an unsupported op, a float file).
    """

    backend = "tflite-micro"
    providers = ()

    def __init__(self, path: str | Path, *, arena_bytes: int | None = None):
        try:
            from tflite_micro import runtime
        except ImportError:
            raise BackendUnavailable(f"TFLite Micro is not installed: {EXTRA}") from None
        self.path = Path(path)
        flatbuffer = self.path.read_bytes()
        arena = arena_bytes or max(16 * len(flatbuffer), 8 << 20)
        try:
            with _quiet_fd2():
                self._interp = runtime.Interpreter.from_bytes(flatbuffer, arena_size=arena)
        except RuntimeError as e:
            raise EdgesmithError(f"TFLite Micro cannot run {self.path.name}: {' '.join(str(e).split())[:300]}") from None
        inp, out = self._interp.get_input_details(0), self._interp.get_output_details(0)
        self._in_dtype = np.dtype(inp["dtype"])
        if self._in_dtype not in (np.int8, np.uint8):
            raise EdgesmithError(f"{self.path.name} takes {self._in_dtype} input: TFLite Micro here runs "
                                 "full-integer files (export with targets cortex-m)", field="ExportConfig.targets")
        self._in_q = self._q(inp)
        self._out_q = self._q(out)

    @staticmethod
    def _q(details: dict) -> tuple[float, int]:
        q = details["quantization_parameters"]
        return (float(q["scales"][0]) if len(q["scales"]) else 1.0,
                int(q["zero_points"][0]) if len(q["zero_points"]) else 0)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class scores for ``(N, H, W, C) uint8`` pixels 0-255: ``(N, K) float32``, the dequantized outputs.

        Pixels are quantized with the input's scale and zero point (``p - 128`` for the usual int8
        input of scale 1, zero point -128).
        """
        scale, zp = self._in_q
        info = np.iinfo(self._in_dtype)
        x = np.clip(np.round(np.asarray(images, np.float32) / np.float32(scale)) + zp, info.min, info.max)
        x = x.astype(self._in_dtype)
        out_scale, out_zp = self._out_q
        outs = []
        for i in range(len(x)):
            self._interp.set_input(x[i:i + 1], 0)
            self._interp.invoke()
            outs.append(np.array(self._interp.get_output(0), dtype=np.float32).reshape(-1))
        if not outs:
            return np.zeros((0, 0), np.float32)
        return (np.stack(outs) - out_zp) * np.float32(out_scale)
