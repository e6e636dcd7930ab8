"""gdb script: the runtimes' CPUID and XGETBV answers without AVX-512, VNNI and AMX.

Loaded by ``tools/as_avx2.sh`` (``gdb -batch -x tools/avx2_gdb.py --args python ...``). When
ONNX Runtime or LiteRT is loaded, every ``cpuid`` and ``xgetbv`` instruction in its shared
libraries (found with ``objdump -d``) gets a breakpoint before it, which records the leaf asked
for, and one after it, which clears the answer's AVX-512, AVX(512)-VNNI, AVX512-BF16/FP16 and AMX
bits, and XCR0's opmask/ZMM/AMX state bits. The libraries' dispatch (ONNX Runtime's MLAS,
LiteRT's XNNPACK via cpuinfo) then picks its AVX2 kernels, which run natively at full speed:
breakpoints fire only where the CPU is asked, at start-up. TensorFlow, numpy and the rest of the
process still see the real CPU.

Why: whether int8 pays, and whether U8S8 saturates, depends on the kernels an AVX2-only CPU
(e.g. AMD Zen 3) gets. QEMU reproduces their numerics but not their speed; on a CPU without
CPUID faulting (``arch_prctl(ARCH_SET_CPUID)``), this is the way to time them natively. The
speed is that of AVX2 code on *this* core, which is not the same as a real Zen 3's.
Set ``AVX2_GDB_LOG=1`` to print every masked answer.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import gdb

LIBS = re.compile(r"onnxruntime|litert|xnnpack", re.IGNORECASE)  # ai_edge_litert's libs say litert
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "edgesmith", "avx2-gdb")
LOG = os.environ.get("AVX2_GDB_LOG") == "1"


def _bits(*positions: int) -> int:
    return sum(1 << p for p in positions)


# (leaf, subleaf) -> register -> bits to clear. Intel SDM vol. 2A, CPUID; AMD APM vol. 3, E.3.
HIDE = {
    (7, 0): {
        # avx512f dq ifma pf er cd bw vl
        "rbx": _bits(16, 17, 21, 26, 27, 28, 30, 31),
        # avx512_vbmi, vbmi2, vnni, bitalg, vpopcntdq
        "rcx": _bits(1, 6, 11, 12, 14),
        # avx512_4vnniw, 4fmaps, vp2intersect, amx_bf16, avx512_fp16, amx_tile, amx_int8
        "rdx": _bits(2, 3, 8, 22, 23, 24, 25),
    },
    # avx_vnni, avx512_bf16, avx_ifma; avx_vnni_int8, avx_ne_convert, avx10
    (7, 1): {"rax": _bits(4, 5, 23), "rdx": _bits(4, 5, 19)},
}
# XCR0: opmask, ZMM_Hi256, Hi16_ZMM, AMX TILECFG, TILEDATA
XCR0_HIDE = _bits(5, 6, 7, 17, 18)

_pending: dict[int, tuple[str, int, int]] = {}
_done: set[str] = set()


def _objdump(*args: str) -> str:
    return subprocess.run(["objdump", *args], capture_output=True, text=True, check=True).stdout


def _scan(path: str) -> tuple[int, list[tuple[int, int, str]]]:
    """``(.text address, [(offset of the instruction, its length, 'cpuid'|'xgetbv'), ...])`` in
    ``path``'s own addresses, cached by size and mtime (objdump takes seconds on ONNX Runtime)."""
    st = os.stat(path)
    key = os.path.join(CACHE, f"{os.path.basename(path)}-{st.st_size}-{int(st.st_mtime)}.json")
    if os.path.exists(key):
        with open(key, encoding="utf-8") as f:
            text, sites = json.load(f)
        return text, [tuple(s) for s in sites]
    text = int(re.search(r"^\s*\d+\s+\.text\s+[0-9a-f]+\s+([0-9a-f]+)", _objdump("-h", path), re.MULTILINE)[1], 16)
    sites = [(int(m[1], 16), len(m[2].split()), m[3]) for m in
             re.finditer(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*(cpuid|xgetbv)\s*$", _objdump("-d", path),
                         re.MULTILINE)]
    os.makedirs(CACHE, exist_ok=True)
    with open(key + ".tmp", "w", encoding="utf-8") as f:
        json.dump([text, sites], f)
    os.replace(key + ".tmp", key)
    return text, sites


def _reg(name: str) -> int:
    return int(gdb.parse_and_eval(f"${name}")) & 0xFFFFFFFFFFFFFFFF


class _Before(gdb.Breakpoint):
    def __init__(self, addr: int, kind: str):
        super().__init__(f"*{addr:#x}", internal=True)
        self.kind = kind

    def stop(self):
        _pending[gdb.selected_thread().global_num] = (self.kind, _reg("rax") & 0xFFFFFFFF, _reg("rcx") & 0xFFFFFFFF)
        return False


class _After(gdb.Breakpoint):
    def __init__(self, addr: int):
        super().__init__(f"*{addr:#x}", internal=True)

    def stop(self):
        asked = _pending.pop(gdb.selected_thread().global_num, None)
        if asked is None:  # reached by a jump, not by executing the instruction before
            return False
        kind, leaf, sub = asked
        if kind == "xgetbv":
            hide = {"rax": XCR0_HIDE} if sub == 0 else {}  # ecx selects the XCR
        else:
            hide = HIDE.get((leaf, sub), {})
        for reg, bits in hide.items():
            value = _reg(reg)
            if value & bits:
                gdb.execute(f"set ${reg} = {value & ~bits & 0xFFFFFFFF:#x}", to_string=True)
                if LOG:
                    gdb.write(f"avx2-gdb: {kind} {leaf:#x}/{sub} {reg} {value:#x} -> {value & ~bits:#x}\n")
        return False


def _on_new_objfile(event) -> None:
    path = event.new_objfile.filename
    if not path or path in _done or not LIBS.search(os.path.basename(path)):
        return
    _done.add(path)
    text, sites = _scan(path)
    libs = gdb.execute("info sharedlibrary", to_string=True)
    m = re.search(r"^(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+\S+\s+(?:\(\*\)\s+)?" + re.escape(path) + r"\s*$", libs, re.MULTILINE)
    if m is None:
        gdb.write(f"avx2-gdb: cannot find {path} in 'info sharedlibrary'; not masked\n")
        return
    base = int(m.group(1), 16) - text  # 'From' is where .text was loaded
    for offset, length, kind in sites:
        _Before(base + offset, kind)
        _After(base + offset + length)
    if LOG:
        gdb.write(f"avx2-gdb: {len(sites)} cpuid/xgetbv sites in {os.path.basename(path)}\n")


gdb.events.new_objfile.connect(_on_new_objfile)
gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("set print thread-events off")
gdb.execute("set print inferior-events off")
gdb.execute("handle SIGINT pass nostop noprint")
gdb.execute("handle SIGPIPE pass nostop noprint")
# The command line, NUL-separated, from as_avx2.sh. bash reads it into an array and execs it, so no
# argument passes through a command line that gdb or a shell parses (python -c CODE keeps its newlines
# and quotes); gdb follows the exec. The inferior gets the caller's stdout and stdin (its fds 3 and 4),
# gdb's own messages go to stderr.
argv_file = os.environ["AVX2_ARGV_FILE"]
gdb.execute("file /bin/bash", to_string=True)
gdb.execute("run -c " + shlex.quote(f'readarray -d "" -t a < {shlex.quote(argv_file)} && rm -f {shlex.quote(argv_file)} '
                                    '&& exec "${a[@]}"') + " >&3 <&4 3>&- 4<&-")
code = gdb.parse_and_eval("$_exitcode")
gdb.execute(f"quit {int(code) if code.type.code != gdb.TYPE_CODE_VOID else 1}")
