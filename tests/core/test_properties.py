"""Hypothesis properties of the parsers a peer feeds: frames, connections on both sides, HTTP heads, handshakes.

What the other test modules already prove is not repeated here (round trips of single frames
in test_frames, server-side fuzzing in test_connection). These add:

* valid *message* sequences (fragmented, compressed, with pings between fragments), cut at
  any points, give the same events as when fed whole, on both sides;
* arbitrary bytes fed to a client-side connection, or to a connection running
  permessage-deflate, only ever end in the documented outcomes;
* the frame parser never holds more than a header and a control frame's payload after
  handing out what it can, whatever it is fed;
* the HTTP head and handshake parsers, given anything, raise only their own errors.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.test_connection import check_contract
from tests.core.test_handshake import parse_request_bytes
from wsdaemon.core import Connection, Limits, Side
from wsdaemon.core.deflate import DeflateSettings
from wsdaemon.core.errors import BadRequest, HandshakeError, InvalidResponse, MessageTooBig, ProtocolViolation
from wsdaemon.core.events import BytesMessage, Event, Ping, TextMessage
from wsdaemon.core.extensions import parse_extension_offers
from wsdaemon.core.frames import FrameParser
from wsdaemon.core.handshake import EndpointPolicy, accept_request, build_request, check_response, response_extensions
from wsdaemon.core.http import RequestHead, ResponseHead, parse_response_head

#: Small limits so that hypothesis reaches them; outgoing messages split into 125-byte frames.
LIMITS = Limits(max_message_bytes=4000, max_frame_bytes=1000, max_fragments=64, fragment_outgoing_bytes=125)
#: The most a frame parser keeps after handing out what it can: a 14-byte header (64-bit
#: length and mask) or a control frame's 125-byte payload, which is only handed out whole.
PARSER_HOLDS_AT_MOST = 125 + 14


def pair(deflate: bool) -> tuple[Connection, Connection]:
    """A client and a server core agreeing on permessage-deflate (or not), by a real handshake."""
    request = build_request("example.com", "/", deflate=deflate)
    accepted = accept_request(parse_request_bytes(request.data), EndpointPolicy(deflate=DeflateSettings()))
    response = parse_response_head(accepted.response)
    client = Connection(Side.CLIENT, LIMITS, response_extensions(response, request))
    assert (client.extension is not None) is deflate and len(accepted.extensions) == deflate
    return client, Connection(Side.SERVER, LIMITS, accepted.extensions)


def drain(connection: Connection, pieces: list[bytes]) -> list[Event]:
    """Feed ``pieces`` one at a time, collecting every event."""
    events: list[Event] = []
    for piece in pieces:
        connection.receive_data(piece)
        while (event := connection.next_event()) is not None:
            events.append(event)
    return events


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (out-of-range ones ignored)."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


MESSAGES = st.lists(
    st.one_of(
        st.text(max_size=300).map(lambda text: ("text", text)),
        st.binary(max_size=300).map(lambda data: ("binary", data)),
        st.binary(max_size=20).map(lambda data: ("ping", data)),
    ),
    min_size=1,
    max_size=6,
)


def sent_by(sender: Connection, messages: list[tuple[str, object]]) -> bytes:
    """What ``sender`` writes for the messages (long ones fragmented, compressed when negotiated)."""
    for kind, value in messages:
        if kind == "text":
            sender.send_text(value)  # type: ignore[arg-type]
        elif kind == "binary":
            sender.send_binary(value)  # type: ignore[arg-type]
        else:
            sender.send_ping(value)  # type: ignore[arg-type]
    return b"".join(sender.data_to_send())


def expected_events(messages: list[tuple[str, object]]) -> list[Event]:
    """The events a receiver must report for the messages, in order."""
    kinds = {"text": TextMessage, "binary": BytesMessage, "ping": Ping}
    return [kinds[kind](value) for kind, value in messages]  # type: ignore[operator]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(messages=MESSAGES, deflate=st.booleans(), to_server=st.booleans(), cuts=st.lists(st.integers(0, 4000)))
def test_valid_messages_cut_anywhere_give_the_same_events(messages, deflate, to_server, cuts):
    """Fragmented, compressed or plain messages, cut at any points, arrive as the same events, on either side."""
    client, server = pair(deflate)
    sender, receiver = (client, server) if to_server else (server, client)
    data = sent_by(sender, messages)
    assert drain(receiver, cut(data, cuts)) == expected_events(messages)
    assert receiver.state is sender.state


FUZZ_LIMITS = Limits(max_message_bytes=300, max_frame_bytes=200, max_fragments=5)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_never_raise_on_the_client_side(data, cuts):
    """A client core fed anything by a "server" only ever reports events or a ConnectionFailed."""
    check_contract(Connection(Side.CLIENT, FUZZ_LIMITS), cut(data, cuts))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=5), to_server=st.booleans())
def test_random_bytes_never_raise_with_deflate(data, cuts, to_server):
    """With permessage-deflate running, arbitrary bytes (RSV1 set or not) end only in documented outcomes."""
    client, server = pair(deflate=True)
    receiver = server if to_server else client
    if to_server:  # a server core only accepts masked frames: mask what hypothesis drew, so it gets further
        data = bytes([data[0], data[1] | 0x80]) + data[2:] if len(data) >= 2 else data
    check_contract(receiver, cut(data, cuts))


@settings(max_examples=300)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8), masked=st.booleans())
def test_frame_parser_holds_no_more_than_a_header_and_a_control_payload(data, cuts, masked):
    """Whatever it is fed, after handing out what it can the parser keeps at most 139 bytes, and raises only 1002/1009."""
    parser = FrameParser(expect_masked=masked, max_frame_bytes=1000)
    for piece in cut(data, cuts):
        parser.feed(piece)
        try:
            while parser.next_chunk() is not None:
                pass
        except (ProtocolViolation, MessageTooBig):
            return
        assert parser.buffered() <= PARSER_HOLDS_AT_MOST


HEADER_NAMES = st.sampled_from(
    [
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "origin",
        "x-other",
    ]
)
HEADER_VALUES = st.text(st.characters(codec="latin-1"), max_size=60) | st.sampled_from(
    ["websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", "permessage-deflate; client_max_window_bits", '"x"']
)
HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=10)


@settings(max_examples=300)
@given(
    method=st.sampled_from(["GET", "POST", "get", ""]),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", ""]),
    headers=HEADERS,
    subprotocols=st.lists(st.sampled_from(["chat", "v2", "x"]), max_size=3).map(tuple),
    secure=st.booleans(),
)
def test_any_upgrade_request_is_accepted_or_refused_with_a_status(method, version, headers, subprotocols, secure):
    """accept_request, given any head, either accepts or raises a HandshakeError carrying an HTTP status."""
    head = RequestHead(method, "/chat", version, tuple(headers))
    try:
        accepted = accept_request(head, EndpointPolicy(subprotocols=subprotocols), secure)
    except HandshakeError as error:
        assert 400 <= error.status < 600
    else:
        assert accepted.response.startswith(b"HTTP/1.1 101 ")


@settings(max_examples=300)
@given(
    values=st.lists(st.text(max_size=80) | st.sampled_from(['a; b="c"', 'a; b="c\\"', "x;;", "permessage-deflate; =1"]))
)
def test_extension_headers_parse_or_raise_bad_request(values):
    """Any Sec-WebSocket-Extensions text parses into token offers or raises BadRequest (a 400), nothing else."""
    try:
        offers = parse_extension_offers(values)
    except BadRequest:
        return
    assert all(offer.name and offer.name == offer.name.lower() for offer in offers)


@settings(max_examples=300)
@given(data=st.binary(max_size=300))
def test_any_response_head_parses_or_raises_invalid_response(data):
    """parse_response_head, given any bytes, returns a head or raises InvalidResponse."""
    try:
        parse_response_head(data)
    except InvalidResponse:
        pass


@settings(max_examples=300)
@given(status=st.sampled_from([101, 200, 400, 101]), reason=st.text(max_size=10), headers=HEADERS)
def test_any_answer_to_our_upgrade_is_checked_without_surprises(status, reason, headers):
    """check_response, given any answer, returns a subprotocol we offered or raises InvalidResponse."""
    request = build_request("example.com", "/", ("chat",), deflate=True)
    try:
        chosen = check_response(ResponseHead(status, reason, tuple(headers)), request)
    except InvalidResponse:
        return
    assert chosen in (None, "chat")
