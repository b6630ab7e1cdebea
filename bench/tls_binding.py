"""The TLS library's own cost per message and per connection: pyOpenSSL against Python's ``ssl``.

``bench/run.py --tls`` measures whole servers. This takes the TLS calls alone, in one process,
with no sockets: the server side of a wss echo makes the same calls into its TLS binding for
each 64-byte message whatever else it does, and keeps the same OpenSSL state per idle
connection. Two bindings, each as its server uses it:

- ``pyopenssl``: what Twisted's ``TLSMemoryBIOProtocol`` (wsdaemon's TLS listener) calls per
  read: ``bio_write`` the record, ``recv`` until ``WantReadError``, then per answer ``send`` and
  ``bio_read`` until ``WantReadError``. OpenSSL is the one in ``cryptography``'s wheel.
- ``ssl``: what ``bench/servers/wsdaemon_stdlib_tls.py`` (and asyncio, for ``websockets``)
  calls: ``MemoryBIO.write``, ``SSLObject.read`` while ``pending`` says there is more,
  ``SSLObject.write`` and ``MemoryBIO.read``. OpenSSL is the one Python was built with.

The client is Python's ``ssl`` in both (TLS 1.3, like the load generator); its work is done
before the clock starts (the records a message arrives in are made in advance) or not timed.

    python bench/tls_binding.py [--messages 20000] [--conns 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

from OpenSSL import SSL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import TIMES, make_tls_files  # bench/ is not a package

#: What Twisted reads from the memory BIO and from ``recv`` at a time.
_TWISTED_READ = 2**15
MESSAGE = b"\x81\x40" + b"x" * 64  # a 64-byte text frame, unmasked as the server sends it
CLIENT_MESSAGE = b"\x81\xc0" + b"\x00" * 4 + b"x" * 64  # the client's, masked (with a zero mask)


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


class MemoryTLS:
    """One end of a TLS connection over memory BIOs, by Python's ``ssl``."""

    def __init__(self, context: ssl.SSLContext, server_side: bool) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = None if server_side else "localhost"
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side, hostname)
        self.received = 0

    def handshake(self, received: bytes) -> bytes:
        """Feed what the other end sent; return what this end sends next."""
        self.incoming.write(received)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()


class Client(MemoryTLS):
    """The client, the same for both servers."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(context, server_side=False)

    def records(self, count: int) -> list[bytes]:
        """``count`` messages, each as the TLS records one client write makes, in order."""
        out = []
        for _ in range(count):
            self.tls.write(CLIENT_MESSAGE)
            out.append(self.outgoing.read())
        return out


class PyOpenSSLServer:
    """The server side as Twisted's TLS protocol drives pyOpenSSL."""

    def __init__(self, context: SSL.Context) -> None:
        self.tls = SSL.Connection(context, None)
        self.tls.set_accept_state()
        self.received = 0

    def handshake(self, received: bytes) -> bytes:
        self.tls.bio_write(received)
        try:
            self.tls.do_handshake()
        except SSL.WantReadError:
            pass
        return self.drain()

    def drain(self) -> bytes:
        out = []
        while True:  # Twisted's _flushSendBIO: read until the BIO says it is empty
            try:
                out.append(self.tls.bio_read(_TWISTED_READ))
            except SSL.WantReadError:
                return b"".join(out)

    def echo(self, record: bytes) -> bytes:
        self.tls.bio_write(record)
        while True:  # Twisted's _flushReceiveBIO: recv until WantReadError
            try:
                self.received += len(self.tls.recv(_TWISTED_READ))
            except SSL.WantReadError:
                break
            self.tls.send(MESSAGE)
        return self.drain()


class StdlibServer(MemoryTLS):
    """The server side as ``wsdaemon_stdlib_tls.py`` drives Python's ``ssl``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(context, server_side=True)

    def echo(self, record: bytes) -> bytes:
        self.incoming.write(record)
        while self.incoming.pending or self.tls.pending():
            try:
                self.received += len(self.tls.read(2**16))
            except ssl.SSLWantReadError:
                break
            self.tls.write(MESSAGE)
        return self.outgoing.read()


Server = PyOpenSSLServer | StdlibServer


def connect(make_server: Callable[[], Server], client: Client) -> tuple[Server, float]:
    """A full TLS 1.3 handshake; returns the server and the seconds its own calls took."""
    server = make_server()
    spent = 0.0
    to_server = client.handshake(b"")
    for _ in range(4):
        start = time.perf_counter()
        to_client = server.handshake(to_server)
        spent += time.perf_counter() - start
        to_server = client.handshake(to_client)
        if client.tls.version() is not None and not to_server:
            break
    return server, spent


def heap_in_use() -> int:
    """glibc's count of allocated heap bytes (``mallinfo2``), after a collection."""
    gc.collect()
    libc = ctypes.CDLL("libc.so.6")

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip

    libc.mallinfo2.restype = Mallinfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def measure(make_server: Callable[[], Server], options: argparse.Namespace) -> dict[str, float]:
    context = client_context()
    per_message, per_handshake = [], []
    for _ in range(options.rounds):
        client = Client(context)
        server, _ = connect(make_server, client)
        records = client.records(options.messages)
        start = time.perf_counter()
        for record in records:
            server.echo(record)
        per_message.append((time.perf_counter() - start) / options.messages)
        if server.received != len(CLIENT_MESSAGE) * options.messages:  # every record decrypted, none lost
            sys.exit(
                f"tls_binding: the server decrypted {server.received} bytes, not {len(CLIENT_MESSAGE) * options.messages}"
            )
        spent = sum(connect(make_server, Client(context))[1] for _ in range(200))
        per_handshake.append(spent / 200)
    before = heap_in_use()
    kept = []
    for _ in range(options.conns):
        client = Client(context)
        server, _ = connect(make_server, client)
        server.echo(client.records(1)[0])
        kept.append(server)
    per_conn = (heap_in_use() - before) / options.conns
    return {
        "us_per_message": min(per_message) * 1e6,
        "us_per_handshake": min(per_handshake) * 1e6,
        "kib_per_conn": per_conn / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per timed round")
    parser.add_argument("--conns", type=int, default=2_000, help="connections held for the memory figure")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; the best is reported")
    options = parser.parse_args()
    cert, key = make_tls_files()

    py_context = SSL.Context(SSL.TLS_METHOD)
    py_context.use_certificate_chain_file(str(cert))
    py_context.use_privatekey_file(str(key))
    py_context.set_mode(SSL.MODE_RELEASE_BUFFERS)  # as wsdaemon's TLS contexts do
    std_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # as the websockets benchmark server does
    std_context.load_cert_chain(cert, key)

    results = {
        "pyopenssl": measure(lambda: PyOpenSSLServer(py_context), options),
        "ssl": measure(lambda: StdlibServer(std_context), options),
    }
    print(
        "| binding | OpenSSL | µs per 64 B echo (TLS calls only) | µs per handshake (server's calls) | KiB per idle connection |"
    )
    print("|---|---|---|---|---|")
    versions = {"pyopenssl": SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode(), "ssl": ssl.OPENSSL_VERSION}
    for name, r in results.items():
        print(
            f"| {name} | {versions[name]} | {r['us_per_message']:.2f} | {r['us_per_handshake']:.0f} | {r['kib_per_conn']:.1f} |"
        )
    a, b = results["pyopenssl"], results["ssl"]
    print(
        f"| pyopenssl / ssl | | {a['us_per_message'] / b['us_per_message']:.2f}{TIMES} | "
        f"{a['us_per_handshake'] / b['us_per_handshake']:.2f}{TIMES} | {a['kib_per_conn'] / b['kib_per_conn']:.2f}{TIMES} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
