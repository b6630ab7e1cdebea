"""The JSON envelope (wsdaemon.hub.envelope): the exact wire format, and parsing for clients."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsdaemon.hub import (
    MAX_OFFSET,
    InvalidEnvelope,
    Notice,
    NoticeType,
    Publication,
    Reason,
    UnknownEnvelope,
    encode_notice,
    encode_publication,
    parse_envelope,
)

EPOCH = "6743a1f0-0001020304050607"


def test_text_message_on_the_wire() -> None:
    """A text message is a JSON object with channel, epoch, offset and data, exactly as docs/recovery.md shows."""
    publication = Publication("/chat/room1", EPOCH, 42, b"hello")
    assert encode_publication(publication) == (
        b'{"channel":"/chat/room1","epoch":"6743a1f0-0001020304050607","offset":42,"data":"hello"}'
    )


def test_binary_message_on_the_wire() -> None:
    """A binary message carries b64 (standard base64, padded) instead of data."""
    publication = Publication("/chat/room1", EPOCH, 43, b"\x00\x01\xfe\xff", binary=True)
    assert encode_publication(publication) == (
        b'{"channel":"/chat/room1","epoch":"6743a1f0-0001020304050607","offset":43,"b64":"AAH+/w=="}'
    )


def test_text_is_escaped_as_json_and_stays_utf8() -> None:
    """Quotes, backslashes and controls are escaped; other Unicode goes as UTF-8, not \\u escapes."""
    publication = Publication("/chat/café", EPOCH, 1, 'say "hi"\\\n \u2028 é 🎉'.encode())
    encoded = encode_publication(publication)
    assert b'"data":"say \\"hi\\"\\\\\\n \xe2\x80\xa8 \xc3\xa9 \xf0\x9f\x8e\x89"' in encoded
    assert json.loads(encoded)["data"] == 'say "hi"\\\n \u2028 é 🎉'
    assert json.loads(encoded)["channel"] == "/chat/café"


def test_envelope_is_cached() -> None:
    """A message reaching many subscribers is encoded once."""
    publication = Publication("/c", EPOCH, 1, b"x")
    assert publication.envelope() is publication.envelope()
    assert publication.envelope() == encode_publication(publication)


def test_publication_data() -> None:
    """data gives text as str and binary as bytes, as the publisher sent them."""
    assert Publication("/c", EPOCH, 1, "é".encode()).data == "é"
    assert Publication("/c", EPOCH, 1, b"\xff", binary=True).data == b"\xff"


@pytest.mark.parametrize(
    ("notice", "wire"),
    [
        (
            Notice(NoticeType.SUBSCRIBED, "/chat", EPOCH, 20),
            b'{"type":"subscribed","channel":"/chat","epoch":"6743a1f0-0001020304050607","offset":20}',
        ),
        (
            Notice(NoticeType.RECOVERED, "/chat", EPOCH, 15),
            b'{"type":"recovered","channel":"/chat","epoch":"6743a1f0-0001020304050607","offset":15}',
        ),
        (
            Notice(NoticeType.HEARTBEAT, "/chat", EPOCH, 20),
            b'{"type":"heartbeat","channel":"/chat","epoch":"6743a1f0-0001020304050607","offset":20}',
        ),
        (
            Notice(NoticeType.NOT_RECOVERED, "/chat", EPOCH, 10, Reason.EXPIRED),
            b'{"type":"not_recovered","channel":"/chat","epoch":"6743a1f0-0001020304050607","offset":10,"reason":"expired"}',
        ),
    ],
)
def test_notices_on_the_wire(notice: Notice, wire: bytes) -> None:
    """Notices have a type, the channel, the position the stream continues from and (not recovered) a reason."""
    assert encode_notice(notice) == wire
    assert parse_envelope(wire) == notice


def test_parse_accepts_str_and_ignores_unknown_fields() -> None:
    """A client may pass the text message as str; fields it does not know are ignored (newer servers)."""
    parsed = parse_envelope('{"channel":"/c","epoch":"e","offset":1,"data":"x","ts":123}')
    assert parsed == Publication("/c", "e", 1, b"x")


def test_unknown_notice_type_is_its_own_error() -> None:
    """A notice type from a newer server raises UnknownEnvelope, which a client ignores."""
    with pytest.raises(UnknownEnvelope) as caught:
        parse_envelope('{"type":"presence","channel":"/c","epoch":"e","offset":1}')
    assert caught.value.type == "presence"
    assert isinstance(caught.value, InvalidEnvelope)


def test_unknown_reason_is_kept() -> None:
    """A reason from a newer server is passed on as a string."""
    parsed = parse_envelope('{"type":"not_recovered","channel":"/c","epoch":"e","offset":1,"reason":"moon"}')
    assert isinstance(parsed, Notice) and parsed.reason == "moon"


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"\xff", "not JSON"),
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[" * 100_000, "not JSON"),
        ('{"offset":' + "1" * 5000 + "}", "not JSON"),
        ("[]", "not a JSON object"),
        ('"x"', "not a JSON object"),
        ('{"epoch":"e","offset":1,"data":"x"}', "channel"),
        ('{"channel":5,"epoch":"e","offset":1,"data":"x"}', "channel"),
        ('{"channel":"/c","offset":1,"data":"x"}', "epoch"),
        ('{"channel":"/c","epoch":"a b","offset":1,"data":"x"}', "epoch"),
        ('{"channel":"/c","epoch":"e","data":"x"}', "offset"),
        ('{"channel":"/c","epoch":"e","offset":-1,"data":"x"}', "offset"),
        ('{"channel":"/c","epoch":"e","offset":1.0,"data":"x"}', "offset"),
        ('{"channel":"/c","epoch":"e","offset":true,"data":"x"}', "offset"),
        ('{"channel":"/c","epoch":"e","offset":"1","data":"x"}', "offset"),
        (f'{{"channel":"/c","epoch":"e","offset":{MAX_OFFSET + 1},"data":"x"}}', "offset"),
        ('{"channel":"/c","epoch":"e","offset":0,"data":"x"}', "at least 1"),
        ('{"channel":"/c","epoch":"e","offset":1}', "exactly one of data and b64"),
        ('{"channel":"/c","epoch":"e","offset":1,"data":"x","b64":"eA=="}', "exactly one of data and b64"),
        ('{"channel":"/c","epoch":"e","offset":1,"data":5}', "data must be a string"),
        ('{"channel":"/c","epoch":"e","offset":1,"data":"\\ud800"}', "lone surrogates"),
        ('{"channel":"/c","epoch":"e","offset":1,"b64":5}', "b64 must be a string"),
        ('{"channel":"/c","epoch":"e","offset":1,"b64":"eA"}', "base64"),
        ('{"channel":"/c","epoch":"e","offset":1,"b64":"e A=="}', "base64"),
        ('{"channel":"/c","epoch":"e","offset":1,"b64":"é"}', "base64"),
        ('{"type":5,"channel":"/c","epoch":"e","offset":1}', "type must be a string"),
        ('{"type":null,"channel":"/c","epoch":"e","offset":1}', "type must be a string"),
        ('{"type":"recovered","channel":"/c","epoch":"e","offset":1,"reason":[]}', "reason must be a string"),
    ],
)
def test_malformed_envelopes(message: str | bytes, problem: str) -> None:
    """Anything that is not an envelope raises InvalidEnvelope saying why, never another exception."""
    with pytest.raises(InvalidEnvelope) as caught:
        parse_envelope(message)
    assert problem in str(caught.value)


CHANNELS = st.sampled_from(["/", "/chat", "/chat/café", '/q"uote\\'])
EPOCHS = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
OFFSETS = st.integers(1, MAX_OFFSET)


@given(CHANNELS, EPOCHS, OFFSETS, st.text())
def test_text_round_trips(channel: str, epoch: str, offset: int, text: str) -> None:
    """Any text message survives encode then parse unchanged (as str and as UTF-8 bytes)."""
    publication = Publication(channel, epoch, offset, text.encode("utf-8"))
    encoded = encode_publication(publication)
    assert parse_envelope(encoded) == publication
    parsed = parse_envelope(encoded.decode("utf-8"))
    assert isinstance(parsed, Publication) and parsed.data == text


@given(CHANNELS, EPOCHS, OFFSETS, st.binary())
def test_binary_round_trips(channel: str, epoch: str, offset: int, data: bytes) -> None:
    """Any binary message survives encode then parse unchanged."""
    publication = Publication(channel, epoch, offset, data, binary=True)
    parsed = parse_envelope(encode_publication(publication))
    assert parsed == publication
    assert isinstance(parsed, Publication) and parsed.data == data


@given(
    st.sampled_from(list(NoticeType)),
    CHANNELS,
    EPOCHS,
    st.integers(0, MAX_OFFSET),
    st.none() | st.sampled_from(list(Reason)),
)
def test_notice_round_trips(outcome: NoticeType, channel: str, epoch: str, offset: int, reason: Reason | None) -> None:
    """Any notice survives encode then parse unchanged."""
    notice = Notice(outcome, channel, epoch, offset, reason)
    assert parse_envelope(encode_notice(notice)) == notice


@given(st.text() | st.binary())
def test_arbitrary_input_only_raises_invalid_envelope(message: str | bytes) -> None:
    """Random input parses or raises InvalidEnvelope: a client's loop needs one except clause."""
    try:
        parse_envelope(message)
    except InvalidEnvelope:
        pass


@given(
    st.dictionaries(
        st.sampled_from(["type", "channel", "epoch", "offset", "data", "b64", "reason"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=8)
        | st.lists(st.integers(), max_size=2),
    )
)
def test_arbitrary_objects_only_raise_invalid_envelope(value: dict[str, object]) -> None:
    """Objects with the right keys and wrong values parse or raise InvalidEnvelope, nothing else."""
    try:
        parse_envelope(json.dumps(value))
    except InvalidEnvelope:
        pass
