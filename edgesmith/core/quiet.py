"""Keep the native libraries' chatter off the terminal, unless asked for (``--verbose``).

TensorFlow, its TFLite converter and LiteRT write to file descriptor 2 from C++, around
Python's ``sys.stderr``: the absl start-up lines (``WARNING: All log messages before
absl::InitializeLog() ...``, ``I0000 ... cudart_stub.cc:31] Could not find cuda drivers``,
the oneDNN notice, ``E0000 ... failed call to cuInit``), the MLIR quantizer's
``fully_quantize: 0, inference_type: 6, ...`` and LiteRT's ``INFO: Created TensorFlow Lite
XNNPACK delegate for CPU.``. Some come before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, so
environment variables alone cannot hide them.

:func:`quiet_native_output` sends descriptor 2 through a small filter process that drops
the lines known to be noise, says the TensorFlow warnings that remain in edgesmith's words
(``warning: TensorFlow: ...``, each once) and passes everything else through unchanged, as
it arrives. A separate process rather than a thread: it never blocks a native writer that
holds the GIL, and a native crash's last lines (``F0000 ... Check failed``) still reach the
terminal after the process that wrote them died. In the CLI, Python's own ``sys.stderr`` keeps
writing to the terminal directly, so rich output keeps its colours and width.

``EDGESMITH_VERBOSE=1`` (or the CLI's ``--verbose``, :func:`set_verbose`) turns all of this
off. TF-free: the runtime and the benchmark workers use it too.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from typing import Iterator, TextIO

VERBOSE_ENV = "EDGESMITH_VERBOSE"

# Set before TensorFlow is imported (it reads them once): its C++ INFO/WARNING logs after
# start-up, gRPC's. ERROR lines stay on; the filter rewords or drops them.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR"}

# Whole lines that are never worth a user's attention.
_NOISE = re.compile("|".join((
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"^fully_quantize: \d+, inference_type: \d+",  # the MLIR quantizer's settings, once per int8 file
    r"^INFO: ",  # TFLite / LiteRT's INFO level: "Created TensorFlow Lite XNNPACK delegate for CPU."
)))
# An absl / TensorFlow C++ log line: "W0000 00:00:1796515933.367 6995 file.cc:31] message".
_ABSL = re.compile(r"^(?P<sev>[IWEF])\d{4} [\d:.]+\s+\d+ (?P<where>[\w.\-/]+:\d+)\] ?(?P<msg>.*)$")
# Warnings and errors TensorFlow logs on every start or run, with nothing for the user to do.
_NATIVE_NOISE = re.compile("|".join((
    r"Could not find cuda drivers",
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning",
    r"Local rendezvous is aborting with status: OUT_OF_RANGE",  # tf.data's end of an epoch
    r"Your input ran out of data",
    r"disabling MLIR crash reproducer",
    r"Ignored (output_format|drop_control_dependency)",
    r"Skipping the delay kernel",
)))
_CUINIT = re.compile(r"failed call to cuInit:?\s*(?:.*cuInit:\s*)?(?P<why>.*)$", re.IGNORECASE)

_verbose: bool | None = None  # the CLI's --verbose; None = from the environment
_set_here: set[str] = set()  # the QUIET_ENV entries quiet_environment() set (not the user)
_unfiltered = False  # leave_unfiltered() was called


def set_verbose(on: bool | None) -> None:
    """``True``: show every native line from now on (and stop a running filter); ``None``:
    follow ``EDGESMITH_VERBOSE`` again. The CLI calls this once per command."""
    global _verbose
    _verbose = on
    if on:
        if _active is not None:
            _active.stop()
        if "tensorflow" not in sys.modules:  # TensorFlow reads its log level once, at import
            for k in _set_here:
                os.environ.pop(k, None)
            _set_here.clear()


def is_verbose() -> bool:
    """Whether native output is shown unfiltered (``--verbose`` or ``EDGESMITH_VERBOSE=1``)."""
    if _verbose is not None:
        return _verbose
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def leave_unfiltered() -> None:
    """For a process whose descriptor 2 is a log file, not a terminal (a benchmark worker): filter
    nothing, so that no filter process starts inside timed work such as a model's load."""
    global _unfiltered
    _unfiltered = True


def quiet_environment() -> None:
    """Set :data:`QUIET_ENV` (where the user has not set them) unless verbose. Call before
    TensorFlow is imported; a later call has no effect on a TensorFlow already loaded."""
    if not is_verbose():
        for k, v in QUIET_ENV.items():
            if k not in os.environ:
                os.environ[k] = v
                _set_here.add(k)


def child_env() -> dict[str, str]:
    """Environment entries for a child process (a benchmark worker) so that it is as quiet, or as
    verbose, as this one."""
    return {VERBOSE_ENV: "1"} if is_verbose() else dict(QUIET_ENV)


def _has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


class LineFilter:
    """Decides, line by line, what of the native output reaches the user (state: warnings said once)."""

    def __init__(self, gpu: bool | None = None):
        self._gpu = _has_nvidia_gpu() if gpu is None else gpu
        self._said: set[str] = set()

    def __call__(self, line: str) -> str | None:
        """``line`` (without its newline) as the user should see it, or None to drop it."""
        if _NOISE.search(line):
            return None
        m = _ABSL.match(line)
        if m is None:
            return line
        sev, msg = m["sev"], m["msg"].strip()
        if sev == "F":  # a fatal check: the process is about to abort, keep it exactly
            return line
        if sev == "I":
            return None
        cuinit = _CUINIT.search(msg)
        if cuinit:  # CUDA's driver library is installed but cannot start a GPU
            if not self._gpu:
                return None
            said = (f"warning: TensorFlow cannot use the GPU (CUDA did not start: {cuinit['why'].strip()}); "
                    "it runs on the CPU. "
                    "`nvidia-smi` shows the driver's state.")
        elif _NATIVE_NOISE.search(msg):
            return None
        else:
            said = f"warning: TensorFlow: {msg}"
        if said in self._said:
            return None
        self._said.add(said)
        return said


def filter_text(text: str) -> str:
    """``text`` (e.g. a child process's captured stderr) without the noise lines; unchanged when verbose."""
    if is_verbose():
        return text
    keep = LineFilter()
    lines = (keep(line) for line in text.splitlines())
    return "".join(line + "\n" for line in lines if line is not None)


class _Filter:
    """File descriptor 2 redirected into a filter process that writes to the original descriptor."""

    def __init__(self, python_direct: bool) -> None:
        self._stopped = True
        try:
            os.fstat(2)
        except OSError:  # no stderr at all: nothing to filter
            return
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        try:  # this file run as a script, isolated (-I): it needs only the standard library, so it
            # starts whether edgesmith is installed or run from a source tree
            self._proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__)],
                                          stdin=read_end, stdout=self._saved, stderr=self._saved, close_fds=True)
        except OSError:  # cannot start a process: better noisy than broken
            os.close(read_end), os.close(write_end), os.close(self._saved)
            return
        os.close(read_end)
        self._stderr: TextIO | None = None
        if python_direct and _writes_to_fd2(sys.stderr):
            self._stderr, old = sys.stderr, sys.stderr
            sys.stderr = open(os.dup(self._saved), "w", buffering=1, encoding=old.encoding, errors=old.errors,
                              closefd=True)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._stopped = False

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._stderr is not None:  # left open: a logging handler made meanwhile may hold it
            mine, sys.stderr = sys.stderr, self._stderr
            with contextlib.suppress(Exception):
                mine.flush()
        os.dup2(self._saved, 2)  # closes our write end: the filter sees the end once children let go
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a child process still holds the pipe: it keeps filtering until then
            pass
        os.close(self._saved)


def _writes_to_fd2(stream) -> bool:
    try:
        return stream is not None and stream.fileno() == 2
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


_active: _Filter | None = None


@contextlib.contextmanager
def quiet_native_output(*, python_direct: bool = False) -> Iterator[None]:
    """While the block runs, native lines on descriptor 2 go through :class:`LineFilter`.

    No-op when verbose or when an outer block (the CLI's, around the whole command) already
    filters. Lines reach the terminal as they are written, not at the end of the block.
    Side effect: child processes started meanwhile inherit the filtered descriptor.

    Args:
        python_direct: for a whole program (the CLI): ``sys.stderr`` writes straight to the
            original descriptor meanwhile, so rich output keeps the terminal's colours and width.
    """
    global _active
    if _active is not None or _unfiltered or is_verbose():
        yield
        return
    _active = _Filter(python_direct)
    try:
        yield
    finally:
        active, _active = _active, None
        active.stop()


def _relay() -> None:
    """The filter process: stdin -> filtered -> stdout, line by line, until the end of stdin."""
    keep = LineFilter()
    src, dst = sys.stdin.buffer, sys.stdout.buffer
    for raw in iter(src.readline, b""):
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        try:
            line = keep(text)
        except Exception:  # a bug here must not swallow the native output: pass it through
            line = text
        if line is None:
            continue
        dst.write(raw if line == text else line.encode() + b"\n")
        dst.flush()


if __name__ == "__main__":
    _relay()
