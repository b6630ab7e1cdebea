"""permessage-deflate (RFC 7692): negotiation, the codec against zlib, and bomb safety."""

from __future__ import annotations

import itertools
import os
import zlib

import pytest

from tests.helpers import client_frame, feed
from wsdaemon.core import (
    BytesMessage,
    Connection,
    ConnectionFailed,
    Limits,
    MessageTooBig,
    ProtocolViolation,
    Side,
    TextMessage,
)
from wsdaemon.core.deflate import (
    CLIENT_OFFER,
    DeflateParams,
    DeflateSettings,
    PerMessageDeflate,
    client_params,
    negotiate,
)
from wsdaemon.core.extensions import ExtensionOffer, parse_extension_offers
from wsdaemon.core.frames import RSV1, Opcode, SharedMessage, serialize_frame

TAIL = b"\x00\x00\xff\xff"


def offers(header: str) -> list[ExtensionOffer]:
    return parse_extension_offers([header])


def response_for(header: str, settings: DeflateSettings | None = None) -> str | None:
    result = negotiate(offers(header), settings or DeflateSettings())
    return None if result is None else result[0]


def raw_deflate(data: bytes, wbits: int = 15) -> bytes:
    """What a peer sends: raw deflate, sync-flushed, with the 00 00 ff ff tail removed."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def raw_inflate(data: bytes, wbits: int = 15) -> bytes:
    return zlib.decompressobj(-wbits).decompress(data + TAIL)


def server_codec(**params: object) -> PerMessageDeflate:
    return PerMessageDeflate(DeflateParams(**params))  # type: ignore[arg-type]


class TestNegotiation:
    """RFC 7692 §5 and §7.1: offers, parameters and the response."""

    def test_plain_offer_is_accepted_with_the_frugal_window(self) -> None:
        """A bare offer is accepted; the response tells the client our 12-bit window."""
        assert response_for("permessage-deflate") == "permessage-deflate; server_max_window_bits=12"

    def test_disabled_endpoint_accepts_nothing(self) -> None:
        """With deflate off, even a valid offer leaves the connection uncompressed."""
        assert response_for("permessage-deflate", DeflateSettings(enabled=False)) is None

    def test_other_extensions_are_ignored(self) -> None:
        """Offers of extensions we do not implement are skipped, not failed."""
        assert response_for("x-webkit-deflate-frame, foo; bar=1") is None

    def test_first_acceptable_offer_wins(self) -> None:
        """Of several offers, the first acceptable one is taken (RFC 7692 §5)."""
        header = "permessage-deflate; unknown_param, permessage-deflate; client_no_context_takeover, permessage-deflate"
        assert response_for(header) == "permessage-deflate; client_no_context_takeover; server_max_window_bits=12"

    @pytest.mark.parametrize(
        "offer",
        [
            "permessage-deflate; foo",  # unknown parameter
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  # repeated
            "permessage-deflate; server_no_context_takeover=1",  # takes no value
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; server_max_window_bits",  # needs a value
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=16",
            'permessage-deflate; client_max_window_bits="x"',
            "permessage-deflate; server_max_window_bits=8",  # zlib cannot compress with 256-byte windows
        ],
    )
    def test_malformed_offer_is_declined(self, offer: str) -> None:
        """A malformed offer is declined, leaving the connection uncompressed (RFC 7692 §5)."""
        assert response_for(offer) is None

    def test_quoted_window_bits_are_accepted(self) -> None:
        """A quoted token value counts the same as a bare one (RFC 6455 §9.1)."""
        assert (
            response_for('permessage-deflate; server_max_window_bits="10"')
            == "permessage-deflate; server_max_window_bits=10"
        )

    @pytest.mark.parametrize(
        ("server_reset", "client_reset", "server_bits", "client_bits"),
        list(itertools.product([False, True], [False, True], [None, 9, 12, 15], [None, "", 9, 15])),
    )
    def test_every_parameter_combination(
        self, server_reset: bool, client_reset: bool, server_bits: int | None, client_bits: int | str | None
    ) -> None:
        """Each combination of the four parameters is accepted and answered as RFC 7692 §7.1 says."""
        params = []
        if server_reset:
            params.append("server_no_context_takeover")
        if client_reset:
            params.append("client_no_context_takeover")
        if server_bits is not None:
            params.append(f"server_max_window_bits={server_bits}")
        if client_bits is not None:
            params.append("client_max_window_bits" + (f"={client_bits}" if client_bits != "" else ""))
        result = negotiate(offers("; ".join(["permessage-deflate", *params])), DeflateSettings())
        assert result is not None
        response, codec = result
        expected = ["permessage-deflate"]
        if server_reset:
            expected.append("server_no_context_takeover")
        if client_reset:
            expected.append("client_no_context_takeover")
        window = min(12, server_bits or 15)
        expected.append(f"server_max_window_bits={window}")
        if client_bits is not None:
            expected.append(f"client_max_window_bits={min(client_bits or 15, 12)}")
        assert response == "; ".join(expected)
        assert codec.params.local_max_window_bits == window
        assert codec.params.local_no_context_takeover is server_reset
        assert codec.params.remote_no_context_takeover is client_reset

    def test_browser_offer_gets_the_frugal_client_window(self) -> None:
        """A browser's valueless client_max_window_bits is answered with 12 bits (28 KiB less per connection)."""
        assert response_for("permessage-deflate; client_max_window_bits") == (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )

    def test_settings_can_ask_for_no_context_takeover(self) -> None:
        """An endpoint configured without context takeover says so in the response."""
        settings = DeflateSettings(
            server_no_context_takeover=True, client_no_context_takeover=True, server_max_window_bits=15
        )
        assert (
            response_for("permessage-deflate", settings)
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        )

    def test_client_side_reads_the_server_response(self) -> None:
        """The client's codec compresses with the client window and inflates with the server's."""
        codec = client_params(offers("permessage-deflate; server_max_window_bits=10; client_no_context_takeover")[0])
        assert codec.params.remote_max_window_bits == 10
        assert codec.params.local_no_context_takeover is True
        assert CLIENT_OFFER.startswith("permessage-deflate")

    def test_client_offer_promises_no_context_takeover(self) -> None:
        """The offer carries the RFC 7692 §7.1.1.2 hint, so a server may ask for client_no_context_takeover."""
        (offer,) = offers(CLIENT_OFFER)
        assert ("client_no_context_takeover", None) in offer.params
        assert ("client_max_window_bits", None) in offer.params
        assert response_for(CLIENT_OFFER, DeflateSettings()) == (
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12"
        )

    def test_client_keeps_the_hint_when_the_response_omits_it(self) -> None:
        """A response without client_no_context_takeover still leaves our compressor resetting; the server's context is kept."""
        codec = client_params(offers("permessage-deflate")[0])
        assert codec.params.local_no_context_takeover is True
        assert codec.params.remote_no_context_takeover is False
        first = codec.encode(b"a repeated phrase, a repeated phrase" * 4)
        assert codec.encode(b"a repeated phrase, a repeated phrase" * 4) == first

    def test_client_honours_server_no_context_takeover(self) -> None:
        """A response with server_no_context_takeover makes our inflater forget the server's context."""
        codec = client_params(offers("permessage-deflate; server_no_context_takeover")[0])
        assert codec.params.remote_no_context_takeover is True

    def test_client_rejects_an_invalid_server_response(self) -> None:
        """A server response with an unknown parameter is a protocol error for the client."""
        with pytest.raises(ProtocolViolation):
            client_params(offers("permessage-deflate; bogus")[0])


class TestCodec:
    """RFC 7692 §7.2: compression with zlib, the tail, and context takeover."""

    @pytest.mark.parametrize("payload", [b"", b"a", b"hello " * 1000, os.urandom(5000)])
    def test_encode_is_raw_deflate_without_the_tail(self, payload: bytes) -> None:
        """Encoded messages inflate with plain zlib once the tail is added back."""
        rsv, data = server_codec(local_max_window_bits=12).encode(payload)
        assert rsv == RSV1
        assert raw_inflate(data) == payload

    def test_decode_reads_what_zlib_wrote(self) -> None:
        """A message compressed by zlib the way a peer does it comes back unchanged."""
        payload = b"compress me " * 500
        codec = server_codec()
        assert codec.decode(raw_deflate(payload), 1 << 20) + codec.decode_end(1 << 20) == payload

    def test_short_messages_are_sent_uncompressed(self) -> None:
        """Below min_size_bytes a message goes out as it is, RSV1 clear."""
        assert server_codec(min_size_bytes=64).encode(b"short") == (0, b"short")

    def test_context_takeover_shrinks_repeated_messages(self) -> None:
        """With context takeover a repeated message compresses to a few bytes the second time."""
        codec = server_codec()
        first = codec.encode(b"the same sentence, again and again. " * 20)[1]
        second = codec.encode(b"the same sentence, again and again. " * 20)[1]
        assert len(second) < len(first) / 4

    def test_no_context_takeover_keeps_no_zlib_object(self) -> None:
        """Without takeover no compressor or decompressor survives a message (memory per connection)."""
        codec = server_codec(local_no_context_takeover=True, remote_no_context_takeover=True)
        codec.encode(b"x" * 1000)
        codec.decode(raw_deflate(b"y" * 1000), 1 << 20)
        codec.decode_end(1 << 20)
        assert codec._compressor is None and codec._decompressor is None

    def test_zlib_objects_are_created_lazily(self) -> None:
        """An idle connection holds no zlib state at all."""
        codec = server_codec()
        assert codec._compressor is None and codec._decompressor is None

    def test_decode_stops_at_the_budget(self) -> None:
        """Inflating never produces more than budget + 1 bytes: a bomb fails before it grows."""
        bomb = raw_deflate(b"\x00" * (10 << 20))
        assert len(bomb) < 20 * 1024
        with pytest.raises(MessageTooBig):
            server_codec().decode(bomb, 1 << 20)

    def test_garbage_is_a_protocol_error(self) -> None:
        """Data that is not a deflate stream fails with 1002, not an exception from zlib."""
        with pytest.raises(ProtocolViolation):
            server_codec().decode(b"\xff\xff\xff\xff", 1 << 20)


def deflate_connection(limits: Limits | None = None, **params: object) -> Connection:
    return Connection(Side.SERVER, limits or Limits(), (server_codec(**params),))


class TestConnectionWithDeflate:
    """The core connection with a negotiated codec (RFC 7692 §6)."""

    def test_compressed_text_message_is_inflated(self) -> None:
        """A compressed single-frame text message arrives as text, also byte by byte."""
        data = client_frame(Opcode.TEXT, raw_deflate("héllo wörld".encode()), rsv=RSV1)
        events, _, _ = feed(make=lambda: deflate_connection(), data=data)
        assert events == [TextMessage("héllo wörld")]

    def test_compressed_fragmented_message_is_inflated(self) -> None:
        """RSV1 on the first frame only: the whole fragmented message is one deflate stream."""
        compressed = raw_deflate(b"0123456789" * 300)
        data = (
            client_frame(Opcode.BINARY, compressed[:10], fin=False, rsv=RSV1)
            + client_frame(Opcode.PING, b"p")
            + client_frame(Opcode.CONTINUATION, compressed[10:])
        )
        events, _, _ = feed(make=lambda: deflate_connection(), data=data)
        assert events[-1] == BytesMessage(b"0123456789" * 300)

    def test_uncompressed_message_on_a_deflate_connection(self) -> None:
        """RSV1 clear means the message was sent as it is (RFC 7692 §6)."""
        events, _, _ = feed(make=lambda: deflate_connection(), data=client_frame(Opcode.TEXT, b"plain"))
        assert events == [TextMessage("plain")]

    def test_bomb_is_closed_with_1009(self) -> None:
        """A 1 KiB-ish frame that inflates past max_message_bytes fails with 1009."""
        bomb = raw_deflate(b"A" * (2 << 20))
        assert len(bomb) < 4 * 1024
        events, _, connection = feed(
            make=lambda: deflate_connection(Limits(max_message_bytes=1 << 20)),
            data=client_frame(Opcode.BINARY, bomb, rsv=RSV1),
        )
        assert events == [ConnectionFailed(1009, "message inflates past the size limit")]
        assert connection.close_code == 1009

    def test_invalid_utf8_inside_compressed_text_is_1007(self) -> None:
        """Inflated text is validated like any other: invalid UTF-8 is 1007."""
        events, _, _ = feed(
            make=lambda: deflate_connection(), data=client_frame(Opcode.TEXT, raw_deflate(b"\xff\xfe"), rsv=RSV1)
        )
        assert events[-1].code == 1007

    def test_rsv1_on_continuation_is_1002(self) -> None:
        """RSV1 on a continuation frame fails the connection with 1002 (RFC 7692 §6.1)."""
        data = client_frame(Opcode.TEXT, raw_deflate(b"ab"), fin=False, rsv=RSV1) + client_frame(
            Opcode.CONTINUATION, b"", rsv=RSV1
        )
        events, _, _ = feed(make=lambda: deflate_connection(), data=data)
        assert events[-1].code == 1002

    def test_rsv1_without_deflate_is_1002(self) -> None:
        """Without a negotiated extension, RSV1 is a protocol error."""
        events, _, _ = feed(
            make=lambda: Connection(Side.SERVER), data=client_frame(Opcode.TEXT, raw_deflate(b"ab"), rsv=RSV1)
        )
        assert events[-1].code == 1002

    def test_outgoing_messages_are_compressed_with_rsv1_on_the_first_frame(self) -> None:
        """A large outgoing message is compressed once and fragmented; RSV1 only on frame one."""
        connection = deflate_connection(Limits(fragment_outgoing_bytes=128))
        payload = os.urandom(1000)
        connection.send_binary(payload)
        wire = b"".join(connection.data_to_send())
        frames = []
        parser_conn = Connection(Side.CLIENT, Limits(), (server_codec(),))
        parser_conn.receive_data(wire)
        frames = parser_conn.events_received()
        assert frames == [BytesMessage(payload)]
        assert wire[0] & RSV1 and wire[0] & 0x0F == Opcode.BINARY

    def test_shared_message_is_encoded_for_the_connection_and_decodes_on_the_peer(self) -> None:
        """A deflate connection given a SharedMessage compresses it itself; a deflate peer reads the message."""
        text = "the same news for every member of the channel " * 4
        message = SharedMessage(Opcode.TEXT, text.encode())
        server = Connection(Side.SERVER, Limits(), (server_codec(local_max_window_bits=12),))
        server.send_shared(message)
        wire = b"".join(server.data_to_send())
        assert wire[0] == 0x80 | RSV1 | Opcode.TEXT  # compressed: not the shared (plain) frames
        assert len(wire) < len(b"".join(message.frames(Limits().fragment_outgoing_bytes)))
        client = Connection(
            Side.CLIENT, Limits(), (client_params(offers("permessage-deflate; server_max_window_bits=12")[0]),)
        )
        client.receive_data(wire)
        assert client.events_received() == [TextMessage(text)]

    def test_round_trip_between_client_and_server_codecs(self) -> None:
        """Messages compressed by our client inflate on our server and back, with takeover."""
        server = Connection(Side.SERVER, Limits(), (server_codec(local_max_window_bits=12),))
        client = Connection(
            Side.CLIENT, Limits(), (client_params(offers("permessage-deflate; server_max_window_bits=12")[0]),)
        )
        for text in ["first message " * 10, "second message " * 10, "x"]:
            client.send_text(text)
            server.receive_data(b"".join(client.data_to_send()))
            (received,) = server.events_received()
            server.send_text(received.data)
            client.receive_data(b"".join(server.data_to_send()))
            assert client.events_received() == [TextMessage(text)]


def test_serialize_frame_rsv_is_on_the_wire() -> None:
    """serialize_frame writes the RSV1 bit it is given."""
    assert serialize_frame(Opcode.TEXT, b"x", rsv=RSV1)[0][0] == 0xC1


def test_incompressible_message_at_the_limit_is_accepted() -> None:
    """A max-size message that grows when deflated is accepted: the limit is on the inflated size."""
    payload = os.urandom(1 << 16)
    compressed = raw_deflate(payload)
    assert len(compressed) > len(payload)
    limits = Limits(max_message_bytes=1 << 16, max_frame_bytes=1 << 16)
    events, _, _ = feed(make=lambda: deflate_connection(limits), data=client_frame(Opcode.BINARY, compressed, rsv=RSV1))
    assert events == [BytesMessage(payload)]


def test_uncompressed_message_on_a_deflate_connection_keeps_the_exact_limit() -> None:
    """The compression allowance applies only to compressed messages."""
    limits = Limits(max_message_bytes=1000, max_frame_bytes=2000)
    events, _, _ = feed(make=lambda: deflate_connection(limits), data=client_frame(Opcode.BINARY, b"x" * 1001))
    assert events[-1].code == 1009
