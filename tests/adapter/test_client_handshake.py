"""The client's reading of the server's answer (wsdaemon.adapter.client.ClientHandshake), hardened.

A server, or anything pretending to be one, may answer with any bytes in any pieces: the
client must raise only ``InvalidResponse`` and never keep more than ``http_max_header_bytes``.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsdaemon.adapter.client import ClientHandshake, retry_after
from wsdaemon.core import InvalidResponse, Limits, accept_key
from wsdaemon.core.http import ResponseHead

LIMITS = Limits(http_max_header_bytes=1024)


def handshake() -> ClientHandshake:
    return ClientHandshake("example.com", "/", LIMITS)


def answer_101(shake: ClientHandshake, extra: bytes = b"") -> bytes:
    """A correct 101 for ``shake``'s request."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(shake.request.key).encode() + b"\r\n" + extra + b"\r\n"
    )


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@settings(max_examples=300)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=10))
def test_any_answer_raises_only_invalid_response_and_keeps_at_most_the_limit(data, cuts):
    """Arbitrary bytes in arbitrary pieces: a head, "more please" or InvalidResponse; never over 1 KiB held."""
    shake = handshake()
    for piece in cut(data, cuts):
        try:
            answer = shake.receive_head(piece)
        except InvalidResponse:
            assert shake.pending_bytes == 0
            return
        assert shake.pending_bytes <= LIMITS.http_max_header_bytes
        if answer is not None:
            return


@given(cuts=st.lists(st.integers(0, 300), max_size=10), trailing=st.binary(max_size=40))
def test_a_valid_101_cut_anywhere_gives_the_same_head_and_rest(cuts, trailing):
    """The 101 read in any pieces is the same head, and the bytes after it are handed on untouched."""
    shake = handshake()
    data = answer_101(shake) + trailing
    pieces = cut(data, cuts)
    # Once the head is complete the handshake is done: later pieces go to the wire protocol.
    fed = 0
    while (result := shake.receive_head(pieces[fed])) is None:
        fed += 1
    head, rest = result
    assert head.status == 101 and head.get("upgrade") == "websocket"
    assert rest + b"".join(pieces[fed + 1 :]) == trailing
    shake.open(head)


def test_a_complete_head_over_the_limit_is_refused_even_in_one_piece():
    """A 101 whose head is over http_max_header_bytes is refused, however it arrives."""
    shake = handshake()
    with pytest.raises(InvalidResponse, match="too large"):
        shake.receive_head(answer_101(shake, b"X-Padding: " + b"p" * 2000 + b"\r\n"))


def test_an_incomplete_head_over_the_limit_is_refused_and_dropped():
    """Header bytes with no end in sight are refused once over the limit, and not kept."""
    shake = handshake()
    shake.receive_head(b"HTTP/1.1 101 OK\r\n")
    with pytest.raises(InvalidResponse):
        shake.receive_head(b"X: " + b"y" * 1100)
    assert shake.pending_bytes == 0


@pytest.mark.parametrize(("value", "seconds"), [("5", 5.0), (" 120 ", 120.0), ("soon", None), (None, None)])
def test_retry_after_in_seconds(value, seconds):
    """Retry-After in delta-seconds is read; an HTTP date or junk gives None."""
    headers = () if value is None else (("retry-after", value),)
    assert retry_after(ResponseHead(503, "Service Unavailable", headers)) == seconds
