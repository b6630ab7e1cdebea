"""Which channel paths a claim allows: exact paths, or a prefix form ending in ``/*``.

The ``broadcast`` handler's ``channels_claim`` names a claim of the verified identity (a JWT
claim such as ``"channels": ["/chat/a", "/news/*"]``); a connection may join only a channel
path that claim allows, anything else gets 403 before the 101.

* ``"/chat/a"`` allows exactly ``/chat/a``.
* ``"/chat/*"`` allows every path under ``/chat/`` (``/chat/a``, ``/chat/a/b``), but not
  ``/chat`` itself nor ``/chatroom``.
* A path with an empty, ``.`` or ``..`` segment is never allowed, so no spelling of a path
  reaches past what the claim names.
* A claim that is a string is one entry; a claim that is missing, or not a string or a list of
  strings, allows nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The suffix that makes an entry a prefix.
PREFIX_SUFFIX = "/*"


def claimed_channels(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The channel entries in ``claims[claim]``; nothing when it is absent or not strings."""
    value = claims.get(claim)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return ()


def channel_allowed(path: str, entries: Sequence[str]) -> bool:
    """Whether the channel at ``path`` ("/chat/a") is one ``entries`` allow (see the module rules)."""
    segments = path.split("/")
    if not path.startswith("/") or any(segment in ("", ".", "..") for segment in segments[1:]):
        return False
    for entry in entries:
        if entry.endswith(PREFIX_SUFFIX):
            prefix = entry[:-1]  # "/chat/"
            if path.startswith(prefix) and len(path) > len(prefix):
                return True
        elif entry == path:
            return True
    return False
