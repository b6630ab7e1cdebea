"""The main process <-> worker channel (wsdaemon.workers.channel): framing, the hello."""

from __future__ import annotations

import os

import pytest

from wsdaemon.config import ListenerConfig, SNIConfig, TLSConfig
from wsdaemon.workers.channel import (
    MAX_MESSAGE_BYTES,
    ChannelError,
    Hello,
    MessageDecoder,
    MessageKind,
    encode,
    read_message,
)


def test_messages_survive_byte_by_byte_delivery():
    """A stream of messages fed one byte at a time decodes to the same messages, binary bodies intact."""
    stream = encode(MessageKind.NOTIFY, b"READY=1\nSTATUS=ok") + encode(MessageKind.NOTIFY, bytes(range(256)))
    decoder = MessageDecoder()
    got = [message for index in range(len(stream)) for message in decoder.feed(stream[index : index + 1])]
    assert got == [(MessageKind.NOTIFY, b"READY=1\nSTATUS=ok"), (MessageKind.NOTIFY, bytes(range(256)))]


def test_an_empty_body_is_a_message():
    """A message may have no body."""
    assert MessageDecoder().feed(encode(MessageKind.NOTIFY, b"")) == [(MessageKind.NOTIFY, b"")]


def test_an_oversized_length_fails_before_buffering():
    """A declared length over the bound is refused from the 5-byte head alone."""
    head = (MAX_MESSAGE_BYTES + 2).to_bytes(4, "big") + b"N"
    with pytest.raises(ChannelError):
        MessageDecoder().feed(head)


def test_an_unknown_kind_fails():
    """A kind byte no wsdaemon process sends breaks the channel."""
    with pytest.raises(ChannelError):
        MessageDecoder().feed(b"\x00\x00\x00\x01Z")


def test_encoding_refuses_a_body_over_the_bound():
    """Our own side never sends what the other would refuse."""
    with pytest.raises(ValueError):
        encode(MessageKind.NOTIFY, bytes(MAX_MESSAGE_BYTES + 1))


def test_hello_round_trips_listeners_with_tls_and_sni():
    """The hello carries the worker number, its heartbeat and every listener's TLS settings."""
    tls = TLSConfig("/c.pem", "/k.pem", (SNIConfig("*.example.com", "/w.pem", "/w.key"),), "/ca.pem", "required")
    hello = Hello(3, 2.5, (ListenerConfig("tcp:8080"), ListenerConfig("systemd:domain=INET:index=0", tls)))
    ((kind, body),) = MessageDecoder().feed(hello.encode())
    assert kind is MessageKind.HELLO and Hello.decode(body) == hello


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"worker": 1, "heartbeat_interval_seconds": 1, "listeners": [{}]}']
)
def test_a_bad_hello_is_a_channel_error(body: bytes):
    """A hello that does not decode is reported as a broken channel, not a traceback."""
    with pytest.raises(ChannelError):
        Hello.decode(body)


def test_read_message_reads_exactly_one_message_from_a_pipe():
    """The worker's blocking read takes its hello and leaves what follows in the pipe."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, encode(MessageKind.HELLO, b"{}") + encode(MessageKind.NOTIFY, b"next"))
        assert read_message(read_end) == (MessageKind.HELLO, b"{}")
        assert MessageDecoder().feed(os.read(read_end, 100)) == [(MessageKind.NOTIFY, b"next")]
    finally:
        os.close(read_end)
        os.close(write_end)


def test_read_message_fails_if_the_channel_closes_first():
    """A worker started by hand (no supervisor behind fd 0) gets a clear error."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"\x00\x00")
    os.close(write_end)
    try:
        with pytest.raises(ChannelError, match="closed the channel"):
            read_message(read_end)
    finally:
        os.close(read_end)
