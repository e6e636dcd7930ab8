"""Old spellings that still work for one release: one ``note:`` line on stderr, once per process.

A renamed option or value keeps working; the first use prints, e.g.::

    note: --targets is deprecated, use --runtime

No traceback and no ``warnings`` machinery: the line is for the person at the terminal (or the
Python user's log), and it is said once however often the old spelling is met.
"""
from __future__ import annotations

import sys

_said: set[str] = set()


def deprecated(message: str) -> None:
    """Print ``note: message`` on stderr the first time ``message`` is seen in this process.

    Args:
        message: one line naming the old spelling and the new one, e.g.
            ``"ONNX preset 'x86' is now 'u8s8'"``.
    """
    if message in _said:
        return
    _said.add(message)
    print(f"note: {message}", file=sys.stderr, flush=True)


def renamed(value: str, aliases: dict[str, str], what: str) -> str:
    """The current name of ``value``: ``aliases[value]`` (with a one-time note) if it is an old
    spelling, else ``value`` unchanged.

    Example::

        renamed("x86", {"x86": "u8s8"}, "ONNX preset")  # 'u8s8'; stderr: note: ONNX preset 'x86' is now 'u8s8'
    """
    if value in aliases:
        deprecated(f"{what} {value!r} is now {aliases[value]!r}")
        return aliases[value]
    return value
