"""permessage-deflate (RFC 7692): parameter negotiation and a bomb-safe codec.

Rules for this file:

* Negotiation picks the first acceptable ``permessage-deflate`` offer and
  declines malformed ones (RFC 7692 §5: unknown parameter, repeated parameter,
  bad value), which leaves the connection uncompressed, never failed.
* Inflating is bounded by the message budget *while* inflating
  (``max_length``), so a tiny frame that would inflate to gigabytes fails with
  1009 after at most ``max_message_bytes + 1`` bytes of output.
* zlib objects are created on the first message that needs them, so an idle
  connection holds none; without context takeover they are dropped after
  each message.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Protocol

from wsdaemon.core.errors import MessageTooBig, ProtocolViolation
from wsdaemon.core.extensions import ExtensionOffer

NAME = "permessage-deflate"

#: RFC 7692 §7.2.1: the empty uncompressed block every sync flush ends with.
_TAIL = b"\x00\x00\xff\xff"

RSV1 = 0x40


def compressed_size_bound(size: int) -> int:
    """The most a message of ``size`` bytes may take on the wire once deflated.

    Data that does not compress grows a little (stored blocks, sync flushes):
    websockets' client sends a 1 MiB random message as 1,051,142 bytes. The
    wire-size checks allow this much, while the inflated size is held to the
    limit itself.
    """
    return size + size // 256 + 1024


@dataclass(frozen=True)
class DeflateSettings:
    """An endpoint's permessage-deflate policy (config table ``[endpoints.deflate]``).

    Attributes:
        enabled: negotiate permessage-deflate when a client offers it.
        server_max_window_bits: our compressor's window, 9-15 (2**bits bytes);
            smaller saves memory per connection, larger compresses better.
        client_max_window_bits: the window we ask the client to compress with,
            when its offer allows that (browsers' offers do); it sizes our
            decompressor's window.
        server_no_context_takeover: reset our compressor after every message
            (less memory between messages, worse ratio).
        client_no_context_takeover: ask the client to reset its compressor,
            so our decompressor holds nothing between messages.
        compression_level: zlib level 0-9.
        memory_level: zlib memLevel 1-9 (memory of the compressor's state).
        min_size_bytes: messages shorter than this are sent uncompressed.
    """

    enabled: bool = True
    server_max_window_bits: int = 12
    client_max_window_bits: int = 12
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    compression_level: int = 6
    memory_level: int = 5
    min_size_bytes: int = 64


#: The integer settings' inclusive ranges; the others are booleans (config validation reads these).
DEFLATE_RANGES: dict[str, tuple[int, int]] = {
    "server_max_window_bits": (9, 15),  # zlib cannot compress raw deflate with an 8-bit window
    "client_max_window_bits": (9, 15),
    "compression_level": (0, 9),
    "memory_level": (1, 9),
    "min_size_bytes": (0, 2**40),
}


@dataclass(frozen=True)
class DeflateParams:
    """What was agreed, from one side's point of view ("local" compresses, "remote" is inflated)."""

    local_max_window_bits: int = 15
    remote_max_window_bits: int = 15
    local_no_context_takeover: bool = False
    remote_no_context_takeover: bool = False
    compression_level: int = 6
    memory_level: int = 8
    min_size_bytes: int = 0


class Extension(Protocol):
    """What :class:`~wsdaemon.core.connection.Connection` needs from a negotiated extension."""

    rsv: int

    def encode(self, payload: bytes) -> tuple[int, bytes]:
        """The RSV bits and payload to send for one outgoing message."""

    def decode(self, data: bytes, budget: int) -> bytes:
        """Decode a piece of an incoming message, producing at most ``budget`` bytes."""

    def decode_end(self, budget: int) -> bytes:
        """Finish an incoming message; what is left to produce, within ``budget``."""


class PerMessageDeflate:
    """The codec of one connection (RFC 7692 §7.2)."""

    rsv = RSV1

    def __init__(self, params: DeflateParams) -> None:
        self.params = params
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def encode(self, payload: bytes) -> tuple[int, bytes]:
        """Compress a whole message (RSV1 set), or pass a short one through (RSV1 clear)."""
        params = self.params
        if len(payload) < params.min_size_bytes:
            return 0, payload
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(
                params.compression_level, zlib.DEFLATED, -params.local_max_window_bits, params.memory_level
            )
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        self._compressor = None if params.local_no_context_takeover else compressor
        if data.endswith(_TAIL):
            data = data[:-4]
        return RSV1, data or b"\x00"

    def decode(self, data: bytes, budget: int) -> bytes:
        """Inflate a piece of a compressed message, failing once it passes ``budget``.

        Raises:
            MessageTooBig: the inflated message would pass the budget (a bomb).
            ProtocolViolation: the data is not a valid deflate stream.
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-self.params.remote_max_window_bits)
        try:
            out = decompressor.decompress(data, budget + 1)
        except zlib.error as error:
            raise ProtocolViolation(f"invalid compressed data: {error}") from None
        if len(out) > budget:
            raise MessageTooBig("message inflates past the size limit")
        return out

    def decode_end(self, budget: int) -> bytes:
        """Add the stripped tail (RFC 7692 §7.2.2) and finish the message.

        Raises:
            MessageTooBig: the inflated message would pass the budget.
            ProtocolViolation: the data is not a valid deflate stream.
        """
        out = self.decode(_TAIL, budget)
        if self.params.remote_no_context_takeover:
            self._decompressor = None
        return out


# --- negotiation ---------------------------------------------------------------


class _Declined(Exception):
    """This offer cannot be accepted; try the next one (RFC 7692 §5)."""


def _window_bits(value: str | None, *, optional: bool) -> int | None:
    """A window-bits value: 8-15; valueless only where the RFC allows it."""
    if value is None:
        if optional:
            return None
        raise _Declined("server_max_window_bits needs a value")
    if not value.isdigit() or value.startswith("0") or not 8 <= int(value) <= 15:
        raise _Declined(f"invalid window bits {value!r}")
    return int(value)


def _offer_params(offer: ExtensionOffer) -> dict[str, str | None]:
    """The offer's parameters by name; repeated or unknown ones decline it."""
    known = (
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    )
    params: dict[str, str | None] = {}
    for name, value in offer.params:
        if name not in known:
            raise _Declined(f"unknown parameter {name}")
        if name in params:
            raise _Declined(f"repeated parameter {name}")
        if name.endswith("takeover") and value is not None:
            raise _Declined(f"{name} takes no value")
        params[name] = value
    return params


def _accept_offer(offer: ExtensionOffer, settings: DeflateSettings) -> tuple[str, DeflateParams]:
    """The response header value and the server-side parameters for one offer."""
    params = _offer_params(offer)
    server_bits = settings.server_max_window_bits
    requested = (
        _window_bits(params.get("server_max_window_bits"), optional=False)
        if "server_max_window_bits" in params
        else None
    )
    if requested is not None:
        if requested == 8:
            raise _Declined("zlib cannot compress with an 8-bit window")
        server_bits = min(server_bits, requested)
    client_bits = 15
    if "client_max_window_bits" in params:
        offered = _window_bits(params["client_max_window_bits"], optional=True) or 15
        client_bits = min(offered, settings.client_max_window_bits)
    server_reset = settings.server_no_context_takeover or "server_no_context_takeover" in params
    client_reset = settings.client_no_context_takeover or "client_no_context_takeover" in params
    response = [NAME]
    if server_reset:
        response.append("server_no_context_takeover")
    if client_reset:
        response.append("client_no_context_takeover")
    if server_bits < 15:
        response.append(f"server_max_window_bits={server_bits}")
    if client_bits < 15:
        response.append(f"client_max_window_bits={client_bits}")
    agreed = DeflateParams(
        local_max_window_bits=server_bits,
        remote_max_window_bits=max(client_bits, 9),  # a larger inflate window reads any smaller one
        local_no_context_takeover=server_reset,
        remote_no_context_takeover=client_reset,
        compression_level=settings.compression_level,
        memory_level=settings.memory_level,
        min_size_bytes=settings.min_size_bytes,
    )
    return "; ".join(response), agreed


def negotiate(
    offers: tuple[ExtensionOffer, ...] | list[ExtensionOffer], settings: DeflateSettings
) -> tuple[str, PerMessageDeflate] | None:
    """Accept the first acceptable permessage-deflate offer (RFC 7692 §5).

    Returns:
        The ``Sec-WebSocket-Extensions`` response value and the codec, or None
        when deflate is off or no offer is acceptable.
    """
    if not settings.enabled:
        return None
    for offer in offers:
        if offer.name != NAME:
            continue
        try:
            response, params = _accept_offer(offer, settings)
        except _Declined:
            continue
        return response, PerMessageDeflate(params)
    return None


# --- client side ----------------------------------------------------------------

#: What our client offers: deflate, that the server may limit our window, and the RFC 7692
#: §7.1.1.2 hint that we reset our compressor after every message whatever the server answers.
#: With the hint a server may ask for ``client_no_context_takeover`` (Autobahn's 13.2, 13.5 and
#: 13.6 groups) and can drop its inflater between our messages; it costs some ratio on runs of
#: similar messages. One offer, not a hinted and an unhinted one: an answer without the parameter
#: could accept either, and we could not tell whether the server relies on the hint.
CLIENT_OFFER = f"{NAME}; client_no_context_takeover; client_max_window_bits"


def client_params(response: ExtensionOffer) -> PerMessageDeflate:
    """The client's codec from the server's accepted parameters (RFC 7692 §7.1).

    Our compressor resets after every message whether or not the response says
    ``client_no_context_takeover``: :data:`CLIENT_OFFER` promised it. Our inflater
    keeps the server's context unless the response has ``server_no_context_takeover``.

    Raises:
        ProtocolViolation: the response has parameters a server may not send.
    """
    try:
        params = _offer_params(response)
        server_bits = (
            _window_bits(params.get("server_max_window_bits"), optional=False)
            if "server_max_window_bits" in params
            else 15
        )
        client_bits = (
            _window_bits(params.get("client_max_window_bits"), optional=False)
            if "client_max_window_bits" in params
            else 15
        )
    except _Declined as error:
        raise ProtocolViolation(f"invalid permessage-deflate response: {error}") from None
    return PerMessageDeflate(
        DeflateParams(
            local_max_window_bits=max(client_bits or 15, 9),
            remote_max_window_bits=server_bits or 15,
            local_no_context_takeover=True,  # CLIENT_OFFER's hint: kept whatever the response says
            remote_no_context_takeover="server_no_context_takeover" in params,
            min_size_bytes=0,
        )
    )
