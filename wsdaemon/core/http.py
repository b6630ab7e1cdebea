"""The small part of HTTP/1.1 the handshake needs, on neutral values (RFC 9110, RFC 9112).

twisted.web parses requests on the server side; these types let the core check
a handshake without knowing about twisted.web, and let the client side parse
the server's response head itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wsdaemon.core.errors import InvalidResponse

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: The reason phrases we send; clients must ignore them (RFC 9112 §4), but people read them.
REASONS = {
    101: "Switching Protocols",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _HeaderLookup:
    """Header access shared by request and response heads; names are kept lower-case."""

    headers: tuple[tuple[str, str], ...]

    def get_all(self, name: str) -> list[str]:
        """Every value of the header ``name`` (lower-case), in order."""
        return [value for key, value in self.headers if key == name]

    def get(self, name: str) -> str | None:
        """The single value of ``name``, or None if absent; several values are joined by commas."""
        values = self.get_all(name)
        return ", ".join(values) if values else None


@dataclass(frozen=True)
class RequestHead(_HeaderLookup):
    """An HTTP request line and headers; header names are kept lower-case."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ResponseHead(_HeaderLookup):
    """An HTTP status line and headers; header names are kept lower-case."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]


def split_outside_quotes(value: str, separator: str) -> list[str]:
    """Split ``value`` on ``separator`` wherever it is not inside a quoted string (RFC 9110 §5.6.4)."""
    if '"' not in value:  # the common case, at C speed
        return [part.strip() for part in value.split(separator)]
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def split_list(values: list[str]) -> list[str]:
    """Split comma-separated header values into elements, empty ones dropped (RFC 9110 §5.6.1)."""
    return [item for value in values for item in split_outside_quotes(value, ",") if item]


def token_list(values: list[str]) -> list[str]:
    """A header's comma-separated tokens, lower-cased (``Connection``, ``Upgrade``)."""
    return [item.lower() for item in split_list(values)]


def is_token(text: str) -> bool:
    """Whether ``text`` is an HTTP token (RFC 9110 §5.6.2)."""
    return _TOKEN.fullmatch(text) is not None


def serialize_response(status: int, headers: list[tuple[str, str]]) -> bytes:
    """Encode a response head; used for the 101, whose bytes twisted.web must not touch."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, '')}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def serialize_request(target: str, headers: list[tuple[str, str]]) -> bytes:
    """Encode a GET request head (the client side of the handshake)."""
    lines = [f"GET {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def find_head_end(data: bytes) -> int:
    """Offset just past the blank line ending a head, or -1 if it has not arrived."""
    end = data.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


def parse_response_head(data: bytes) -> ResponseHead:
    """Parse a complete response head (status line and headers, CRLF-terminated).

    Raises:
        InvalidResponse: the head is not well-formed HTTP/1.1.
    """
    try:
        text = data.decode("latin-1")
        status_line, *header_lines = text.rstrip("\r\n").split("\r\n")
        version, status, *reason = status_line.split(" ", 2)
        if not version.startswith("HTTP/1."):
            raise ValueError(version)
        headers = []
        for line in header_lines:
            name, _, value = line.partition(":")
            if not _ or not is_token(name):
                raise ValueError(line)
            headers.append((name.lower(), value.strip()))
        return ResponseHead(int(status), reason[0] if reason else "", tuple(headers))
    except ValueError as error:
        raise InvalidResponse(f"malformed HTTP response head: {error}") from None
