"""The full listener stack in memory: ``build_factory`` on a ``MemoryReactorClock``.

Each :class:`Peer` is one accepted TCP connection on a ``StringTransport``:
tests write raw HTTP and frames into it and parse what the daemon wrote back.
No socket is opened and no reactor runs (DESIGN §2.6, tier 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tests.adapter.recording import RecordingFactory
from tests.helpers import client_frame, parse_frames
from wsdaemon.adapter.switching import SwitchingFactory, SwitchingProtocol
from wsdaemon.admission import Admission
from wsdaemon.config import Config, default_config, parse_config
from wsdaemon.web.site import build_factory

#: The sample key of RFC 6455 §1.3 and its accept value.
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
HOST = "localhost:8080"
PEER_IP = "203.0.113.5"


def upgrade_request(
    path: str = "/echo",
    *,
    key: str = RFC_KEY,
    version: str = "13",
    host: str = HOST,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A WebSocket upgrade request head (RFC 6455 §4.1), with extra ``headers``."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_request(
    path: str, *, method: str = "GET", headers: Iterable[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    """A plain HTTP/1.1 request (keep-alive, the 1.1 default)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Response:
    """One parsed HTTP response; header names lower-case, in wire order."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes
    rest: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """The value of ``name`` (several are joined by commas), or None."""
        values = [value for key, value in self.headers if key == name.lower()]
        return ", ".join(values) if values else None


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")
            return body, data
        body, data = body + data[:size], data[size + 2 :]


def parse_response(data: bytes) -> Response:
    """Parse the first response in ``data``; what follows it is kept in ``rest``."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, *reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    response = Response(int(status), reason[0] if reason else "", headers, b"", head + sep)
    length = response.header("content-length")
    if response.status == 101 or response.status == 304 or response.status < 200:
        response.rest = rest
    elif response.header("transfer-encoding") == "chunked":
        response.body, response.rest = _dechunk(rest)
    elif length is not None:
        response.body, response.rest = rest[: int(length)], rest[int(length) :]
    else:
        response.body = rest  # delimited by closing the connection
    return response


def parse_responses(data: bytes) -> list[Response]:
    """Every response in ``data``, in order."""
    responses = []
    while data:
        response = parse_response(data)
        responses.append(response)
        data = response.rest
    return responses


def make_config(toml: str | None = None) -> Config:
    """The built-in defaults, or ``toml`` parsed as a config file named test.toml."""
    return default_config() if toml is None else parse_config(toml, "test.toml")


class Stack:
    """A listener's protocol factory on a memory clock, with a factory per endpoint.

    Every endpoint gets an echoing :class:`RecordingFactory` unless
    ``factories`` names another one for its path; ``admission`` replaces the
    daemon's own (a test double); ``authenticators`` (by path) guard the
    endpoints whose ``[endpoints.auth]`` names one.
    """

    def __init__(
        self,
        config: Config | str | None = None,
        factories: Mapping[str, Any] | None = None,
        admission: Admission | None = None,
        authenticators: Mapping[str, Any] | None = None,
        clock: MemoryReactorClock | None = None,
    ) -> None:
        self.config = config if isinstance(config, Config) else make_config(config)
        self.clock = clock or MemoryReactorClock()
        self.factories: dict[str, Any] = {endpoint.path: RecordingFactory() for endpoint in self.config.endpoints}
        self.factories.update(factories or {})
        self.factory: SwitchingFactory = build_factory(
            self.config, self.factories, self.clock, admission, authenticators=authenticators
        )

    def connect(self, host: str = PEER_IP, port: int = 40000) -> Peer:
        """Accept one connection from ``host``."""
        address = IPv4Address("TCP", host, port)
        protocol = self.factory.buildProtocol(address)
        assert protocol is not None, "the factory refused the connection"
        transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=address)
        protocol.makeConnection(transport)
        return Peer(protocol, transport)

    def upgraded(self, path: str = "/echo", **kwargs: Any) -> Peer:
        """A connection that completed the upgrade on ``path``; the 101 is consumed."""
        peer = self.connect()
        response = peer.request(upgrade_request(path, **kwargs))
        assert response.status == 101, response
        return peer


@dataclass
class Peer:
    """One accepted connection, seen from the client's side of the wire."""

    protocol: SwitchingProtocol
    transport: StringTransport

    def send(self, data: bytes) -> None:
        """Deliver ``data`` as if it arrived from the network."""
        self.protocol.dataReceived(data)

    def take(self) -> bytes:
        """Everything the daemon wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return data

    def request(self, data: bytes) -> Response:
        """Send a request and parse the one response it gets."""
        self.send(data)
        written = self.take()
        response = parse_response(written)
        assert not response.rest or response.status == 101, f"more than one response: {written!r}"
        return response

    def send_frame(self, opcode: int, payload: bytes = b"", **kwargs: Any) -> None:
        """Send one masked client frame."""
        self.send(client_frame(opcode, payload, **kwargs))

    def frames(self) -> list[tuple[bool, int, bytes]]:
        """The frames the daemon wrote since the last call, as (fin, opcode, payload)."""
        return parse_frames(self.take(), masked=False)

    def lose(self, reason: Failure | None = None) -> None:
        """The TCP connection ends (cleanly unless ``reason`` says otherwise)."""
        self.protocol.connectionLost(reason or Failure(ConnectionDone()))
