"""Channel names: the URL path a channel's members connect to.

Rules for this file:

* A channel is named by the decoded URL path of its endpoint plus, with
  ``channel_from_path``, the segments after it (``/chat/room1``), so two
  endpoints can never share a channel by accident, and the same name works in
  the publish API, in Redis keys and in logs.
* A name is a ``str`` that starts with ``/``; ``/`` alone is allowed. It has no
  empty, ``.`` or ``..`` segment (``/a//b``, ``/a/``, ``/a/../b`` are not the
  paths a browser would connect to), no ``?`` or ``#`` (they would end the path
  in a URL), and no control, line-separator or surrogate character (they
  would break log lines, ``redis-cli`` lines and UTF-8). Anything else of
  Unicode is fine: a room may be called ``/chat/café``.
* A name is at most :data:`MAX_CHANNEL_BYTES` bytes of UTF-8, so an attacker
  cannot make keys, log lines or history records large by naming channels.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from wsdaemon.hub.errors import InvalidChannel

#: Longest channel name, in bytes of UTF-8 (the endpoint path included).
MAX_CHANNEL_BYTES = 512

#: Unicode categories a name may not contain: controls, surrogates, line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_FORBIDDEN_CHARACTERS = frozenset("?#")


def channel_problem(name: object) -> str | None:
    """What is wrong with ``name`` as a channel name, or ``None`` when it is valid.

    A reason rather than a boolean, so the publish API's 400 and the config's
    startup error can say which rule was broken.

    Args:
        name: anything (a JSON value from the publish API, a config value).

    Returns:
        A short, safe-to-send description of the first broken rule, or ``None``.
    """
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
    if name != "/":
        for segment in name[1:].split("/"):
            if segment in ("", ".", ".."):
                return "must not contain an empty, '.' or '..' segment (no '//' and no trailing '/')"
    return _character_problem(name)


def _character_problem(name: str) -> str | None:
    """The first forbidden character of ``name``, described, or ``None``."""
    if name.isascii() and name.isprintable() and not _FORBIDDEN_CHARACTERS.intersection(name):
        return None  # the common case, without a category lookup per character
    for character in name:
        if character in _FORBIDDEN_CHARACTERS or unicodedata.category(character) in _FORBIDDEN_CATEGORIES:
            return f"must not contain {character!r} (U+{ord(character):04X})"
    return None


def check_channel(name: object) -> str:
    """``name`` itself, once it is known to be a valid channel name.

    Args:
        name: the candidate (any value, e.g. from decoded JSON).

    Returns:
        ``name``, typed as ``str``.

    Raises:
        InvalidChannel: naming the rule ``name`` breaks (HTTP 400).
    """
    problem = channel_problem(name)
    if problem is None and isinstance(name, str):
        return name
    raise InvalidChannel(f"invalid channel: {problem}")


def join_channel(endpoint: str, rest: Sequence[bytes]) -> str:
    """The channel named by an endpoint path and the URL segments after it.

    For ``channel_from_path`` endpoints: ``join_channel("/chat", [b"room1"])``
    is ``"/chat/room1"``; with no segments the endpoint itself is the channel.
    The segments are twisted.web's ``request.postpath`` (already unquoted).

    Args:
        endpoint: the endpoint's configured path, e.g. ``"/chat"`` (a trailing
            ``/`` is ignored).
        rest: the path segments after the endpoint.

    Returns:
        The valid channel name.

    Raises:
        InvalidChannel: the result is not a valid name (a segment is not
            UTF-8, is empty, or the whole is too long).
    """
    try:
        tail = "/".join(segment.decode("utf-8") for segment in rest)
    except UnicodeDecodeError:
        raise InvalidChannel("invalid channel: must be UTF-8") from None
    base = endpoint.rstrip("/")
    return check_channel(f"{base}/{tail}" if rest else base or "/")
