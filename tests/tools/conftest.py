"""The int8 probe the CPU-view tools (as_avx2.sh, as_arm64.sh) are tested with."""
from __future__ import annotations

from pathlib import Path

import pytest

K = 64  # products per output: K / 2 pair sums for AVX2's vpmaddubsw

# argv: the model file. Prints the MatMulInteger result, then TAIL's line; re-runs itself once
# through sys.executable (as the bench starts its workers), so a child Python prints it too.
_PROBE = """
import platform, subprocess, sys
import numpy as np, onnxruntime as ort
from edgesmith.core.cpuinfo import cpu_info
from edgesmith.export.targets import detect_target

s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
k = s.get_inputs()[0].shape[1]
y = int(s.run(None, {"A": np.full((1, k), 255, np.uint8)})[0][0, 0])
"""
_CHILD = """
if len(sys.argv) == 2:
    sys.exit(subprocess.run([sys.executable, *sys.orig_argv[1:], "child"]).returncode)
"""


class Int8Probe:
    """``probe(print_line) -> [probe.py, model.onnx]``: a probe script (given the line that prints
    what it saw, with ``y``, ``platform``, ``cpu_info`` and ``detect_target`` in scope) and the
    ``(1, K) uint8 x (K, 1) int8 -> int32`` MatMulInteger it runs, every weight 127.

    ``exact`` is what exact int8 kernels (VNNI, AMX, Arm) return; ``saturated`` what AVX2's U8S8
    kernel returns: each of the K / 2 pair sums, 2 x 255 x 127 = 64,770, clipped to int16.
    """

    exact = 255 * 127 * K
    saturated = (K // 2) * 32767

    def __init__(self, model: Path):
        self.model = model

    def __call__(self, print_line: str) -> list[str]:
        probe = self.model.with_name("probe.py")
        probe.write_text(_PROBE + print_line + "\n" + _CHILD)
        return [str(probe), str(self.model)]


@pytest.fixture
def int8_probe(tmp_path) -> Int8Probe:
    """An :class:`Int8Probe` writing into ``tmp_path``."""
    pytest.importorskip("onnxruntime", reason="needs ONNX Runtime (pip install 'edgesmith[onnx]')")
    pytest.importorskip("onnx", reason="the probe model is built with onnx (pip install 'edgesmith[train]')")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    model = tmp_path / "matmul.onnx"
    b = numpy_helper.from_array(np.full((K, 1), 127, np.int8), "B")
    g = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "g",
                          [helper.make_tensor_value_info("A", TensorProto.UINT8, [1, K])],
                          [helper.make_tensor_value_info("Y", TensorProto.INT32, [1, 1])], [b])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    return Int8Probe(model)
