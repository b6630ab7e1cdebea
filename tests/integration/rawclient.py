"""Small helpers for raw-socket integration tests: /proc readings and hand-made frames."""

from __future__ import annotations

import struct


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def masked_binary_frame(payload: bytes) -> bytes:
    """One client binary frame, masked with the all-zero key (valid, and the payload stays as it is)."""
    if len(payload) > 65535:
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, len(payload))
    else:
        header = struct.pack("!BBH", 0x82, 0x80 | 126, len(payload))
    return header + b"\x00\x00\x00\x00" + payload
