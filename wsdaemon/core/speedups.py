"""Masking and UTF-8 validation: the C accelerator when it was built, else pure Python.

Both implementations have the same contract and give identical results (the
tests run every case through both):

* ``apply_mask(data, mask) -> bytes``: XOR with the 4-byte mask repeated (RFC 6455 §5.3).
* ``unmask_join(pieces, mask) -> bytes``: the pieces of one masked payload,
  joined and unmasked (in C, one pass straight into the result).
* ``utf8_validate(state, data) -> state``: advance an incremental UTF-8 check.
  ``UTF8_ACCEPT`` (0) means "between characters", a positive state "inside a
  character", ``UTF8_REJECT`` (-1) "invalid". It rejects at the first byte that
  cannot continue a well-formed sequence (Unicode Table 3-7), so a text message
  fails in the very piece of data that makes it invalid (Autobahn 6.4.*).

Set ``WSDAEMON_NO_SPEEDUPS=1`` to force the pure-Python versions (CI runs
the tests both ways).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

UTF8_ACCEPT = 0
UTF8_REJECT = -1

# Pure-Python states, numbered as in _speedups.c.
_CONT1, _CONT2, _CONT3, _E0, _ED, _F0, _F4 = 1, 2, 3, 4, 5, 6, 7

#: For a state inside a character: the byte range allowed next, and the state after it.
_NEXT: dict[int, tuple[int, int, int]] = {
    _CONT1: (0x80, 0xBF, UTF8_ACCEPT),
    _CONT2: (0x80, 0xBF, _CONT1),
    _CONT3: (0x80, 0xBF, _CONT2),
    _E0: (0xA0, 0xBF, _CONT1),
    _ED: (0x80, 0x9F, _CONT1),
    _F0: (0x90, 0xBF, _CONT2),
    _F4: (0x80, 0x8F, _CONT2),
}


def _lead_state(byte: int) -> int:
    """The state after a byte read between characters."""
    if byte < 0x80:
        return UTF8_ACCEPT
    if 0xC2 <= byte <= 0xDF:
        return _CONT1
    if 0xE1 <= byte <= 0xEF and byte != 0xED:
        return _CONT2
    if 0xF1 <= byte <= 0xF3:
        return _CONT3
    return {0xE0: _E0, 0xED: _ED, 0xF0: _F0, 0xF4: _F4}.get(byte, UTF8_REJECT)


def _step(state: int, byte: int) -> int:
    if state == UTF8_ACCEPT:
        return _lead_state(byte)
    if state == UTF8_REJECT:
        return UTF8_REJECT
    low, high, after = _NEXT[state]
    return after if low <= byte <= high else UTF8_REJECT


def _incomplete_tail(data: bytes) -> int:
    """Where a character cut off by the end of ``data`` starts (``len(data)`` if none)."""
    end = len(data)
    for start in range(end - 1, max(end - 4, -1), -1):
        byte = data[start]
        if byte < 0x80:
            return end
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return start if start + need > end and byte not in (0xC0, 0xC1) and byte < 0xF5 else end
    return end


def py_utf8_validate(state: int, data: bytes) -> int:
    """Pure-Python ``utf8_validate``: byte steps at the edges, ``bytes.decode`` (C) in between."""
    view = memoryview(data)
    index = 0
    while state > UTF8_ACCEPT and index < len(view):
        state = _step(state, view[index])
        index += 1
    if state != UTF8_ACCEPT:
        return state
    middle = bytes(view[index:])
    tail = _incomplete_tail(middle)
    try:
        middle[:tail].decode("utf-8")
    except UnicodeDecodeError:
        return UTF8_REJECT
    for byte in middle[tail:]:
        state = _step(state, byte)
    return state


def py_apply_mask(data: bytes, mask: bytes) -> bytes:
    """Pure-Python ``apply_mask``: big-integer XOR beats a byte loop by two orders of magnitude."""
    length = len(data)
    if not length:
        return b""
    key = (mask * ((length + 3) // 4))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")


def py_unmask_join(pieces: Sequence[bytes | memoryview], mask: bytes) -> bytes:
    """Pure-Python ``unmask_join``: the pieces of one masked payload, joined, then unmasked."""
    return py_apply_mask(b"".join(pieces), mask)


Speedups = tuple[
    Callable[[bytes, bytes], bytes],
    Callable[[Sequence[bytes | memoryview], bytes], bytes],
    Callable[[int, bytes], int],
    bool,
]


def _load() -> Speedups:
    pure: Speedups = (py_apply_mask, py_unmask_join, py_utf8_validate, False)
    if os.environ.get("WSDAEMON_NO_SPEEDUPS", "") not in ("", "0"):
        return pure
    try:
        from wsdaemon.core import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return pure
    return _speedups.apply_mask, _speedups.unmask_join, _speedups.utf8_validate, True


apply_mask, unmask_join, utf8_validate, ACCELERATED = _load()
