"""Channel names: the URL path members connect to (``/chat/room1``).

A stand-in until ``wsdaemon.hub.channels`` lands (same function, same rules):
a name starts with ``/``, has no empty, ``.`` or ``..`` segment, no ``?`` or
``#``, no control or line-separator character, and is at most
:data:`MAX_CHANNEL_BYTES` bytes of UTF-8, so it is safe in Redis keys, in log
lines and on a ``redis-cli`` command line.
"""

from __future__ import annotations

import unicodedata

#: Longest channel name, in bytes of UTF-8 (the endpoint path included).
MAX_CHANNEL_BYTES = 512


def channel_problem(name: object) -> str | None:
    """What is wrong with ``name`` as a channel name (safe to send back), or None when it is valid."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name.startswith("/"):
        return "must be a URL path starting with '/'"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    if size > MAX_CHANNEL_BYTES:
        return f"must be at most {MAX_CHANNEL_BYTES} bytes of UTF-8, got {size}"
    if name != "/" and any(segment in ("", ".", "..") for segment in name[1:].split("/")):
        return "must not contain an empty, '.' or '..' segment (no '//' and no trailing '/')"
    if any(char in "?#" or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") for char in name):
        return "must not contain '?', '#' or control characters"
    return None
