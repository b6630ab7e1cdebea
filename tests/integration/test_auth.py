"""Authentication before the upgrade, against the real daemon on 127.0.0.1.

Tokens are made here with PyJWT, passwords hashed here with bcrypt; the daemon reads the key
and password files named in its config. Every refusal must come before any 101, and no log
line, at any level, may hold a token or a password.
"""

from __future__ import annotations

import base64
import signal
import socket
import time
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.integration.support import LOOPBACK, wait_for_output

TIMEOUT = 10.0
SECRET = b"integration-secret-integration-secret!"
PASSWORD = "correct horse battery staple"

CONFIG = """
[[endpoints]]
path = "/echo"
handler = "echo"
[endpoints.auth]
type = "jwt"
algorithms = ["HS256"]
secret_file = "{secret}"
token_from = ["header", "cookie", "query"]
cookie_name = "access_token"
close_on_expiry = true

[[endpoints]]
path = "/chat"
handler = "broadcast"
[endpoints.options]
channel_from_path = true
channels_claim = "channels"
[endpoints.auth]
type = "jwt"
algorithms = ["HS256"]
secret_file = "{secret}"

[[endpoints]]
path = "/basic"
handler = "echo"
[endpoints.auth]
type = "basic"
htpasswd_file = "{users}"
"""


def make_token(**claims: Any) -> str:
    """An HS256 token for alice, valid for an hour unless ``claims`` say otherwise."""
    values = {"sub": "alice", "exp": int(time.time()) + 3600, **claims}
    return jwt.encode(values, SECRET, algorithm="HS256")


@pytest.fixture
def auth_daemon(tmp_path: Path, daemon_factory: Any) -> Any:
    """A daemon with jwt endpoints (/echo, /chat) and a basic one (/basic), logging at debug level."""
    secret = tmp_path / "jwt.secret"
    secret.write_bytes(SECRET)
    users = tmp_path / "users.htpasswd"
    users.write_bytes(b"alice:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)) + b"\n")
    return daemon_factory(CONFIG.format(secret=secret, users=users), twist_args=["--log-level=debug"])


def raw_upgrade(port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    """Send an upgrade request by hand and return everything the daemon answers before closing or pausing."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {LOOPBACK}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def status_of(url: str, **kwargs: Any) -> int:
    """The HTTP status an upgrade to ``url`` gets (101 when it opens)."""
    try:
        with connect(url, proxy=None, open_timeout=TIMEOUT, **kwargs):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def test_no_token_gets_401_before_any_101(auth_daemon):
    """An upgrade without a token is answered 401 with a Bearer challenge, and no 101 ever comes."""
    answer = raw_upgrade(auth_daemon.port, "/echo")
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b'WWW-Authenticate: Bearer realm="wsdaemon"' in answer
    assert b"101" not in answer.split(b"\r\n", 1)[0] and b"Sec-WebSocket-Accept" not in answer


@pytest.mark.parametrize("place", ["header", "cookie", "query"])
def test_valid_token_over_header_cookie_or_query_opens(auth_daemon, place):
    """A valid token opens the WebSocket whether it is sent as a Bearer header, a cookie or ?token=."""
    token = make_token()
    url, headers = auth_daemon.ws_url("/echo"), {}
    if place == "header":
        headers = {"Authorization": f"Bearer {token}"}
    elif place == "cookie":
        headers = {"Cookie": f"theme=dark; access_token={token}"}
    else:
        url += f"?token={token}"
    with connect(url, proxy=None, open_timeout=TIMEOUT, additional_headers=headers) as client:
        client.send("hello")
        assert client.recv(TIMEOUT) == "hello"


def test_expired_or_wrongly_signed_tokens_get_401(auth_daemon):
    """An expired token, one signed with another secret and an unsigned one all get 401."""
    forged = jwt.encode({"sub": "alice", "exp": int(time.time()) + 3600}, b"x" * 40, algorithm="HS256")
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 3600}, None, algorithm="none")
    for token in (make_token(exp=int(time.time()) - 10), forged, unsigned):
        headers = {"Authorization": f"Bearer {token}"}
        assert status_of(auth_daemon.ws_url("/echo"), additional_headers=headers) == 401


def test_close_on_expiry_closes_with_1008(auth_daemon):
    """A connection whose token expires while it is open is closed by the daemon with 1008."""
    token = make_token(exp=int(time.time()) + 3)
    with connect(
        auth_daemon.ws_url("/echo"),
        proxy=None,
        open_timeout=TIMEOUT,
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as client:
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "credentials expired")


def test_channels_claim_allows_chat_a_and_refuses_chat_b_with_403(auth_daemon):
    """With channels = ["/chat/a"] in the token, /chat/a opens and /chat/b gets 403 before any 101."""
    headers = {"Authorization": f"Bearer {make_token(channels=['/chat/a'])}"}
    with connect(auth_daemon.ws_url("/chat/a"), proxy=None, open_timeout=TIMEOUT, additional_headers=headers) as client:
        client.send("in a")
        assert client.recv(TIMEOUT) == "in a"
    assert raw_upgrade(auth_daemon.port, "/chat/b", headers).startswith(b"HTTP/1.1 403 ")


def basic_header(user: str, password: str) -> dict[str, str]:
    """Authorization: Basic for ``user`` and ``password``."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_with_a_bcrypt_file(auth_daemon):
    """The right password opens /basic; a wrong one or none gets 401 with a Basic challenge."""
    with connect(
        auth_daemon.ws_url("/basic"),
        proxy=None,
        open_timeout=TIMEOUT,
        additional_headers=basic_header("alice", PASSWORD),
    ) as client:
        client.send("hi")
        assert client.recv(TIMEOUT) == "hi"
    wrong = raw_upgrade(auth_daemon.port, "/basic", basic_header("alice", "guess"))
    assert wrong.startswith(b"HTTP/1.1 401 ") and b'WWW-Authenticate: Basic realm="wsdaemon"' in wrong
    assert raw_upgrade(auth_daemon.port, "/basic").startswith(b"HTTP/1.1 401 ")


def test_no_log_line_holds_a_token_or_a_password(auth_daemon):
    """At debug level, after accepted and refused tokens and passwords, no log line holds any of them."""
    good, expired = make_token(), make_token(exp=int(time.time()) - 10)
    secrets = [good, expired, PASSWORD, "guess-password", SECRET.decode()]
    for token in (good, expired):
        raw_upgrade(auth_daemon.port, "/echo", {"Authorization": f"Bearer {token}"})
        raw_upgrade(auth_daemon.port, f"/echo?token={token}")
        raw_upgrade(auth_daemon.port, "/echo", {"Cookie": f"access_token={token}"})
    raw_upgrade(auth_daemon.port, "/basic", basic_header("alice", PASSWORD))
    raw_upgrade(auth_daemon.port, "/basic", basic_header("alice", "guess-password"))
    raw_upgrade(auth_daemon.port, "/basic", basic_header("guess-password", "alice"))
    wait_for_output(auth_daemon, "authentication refused", count=5)
    wait_for_output(auth_daemon, "websocket closed", count=4)
    output = auth_daemon.output()
    assert "jwt: token expired" in output and "basic: wrong password for user 'alice'" in output
    for secret in secrets:
        pieces = [secret, *(piece for piece in secret.split(".") if len(piece) > 8)]
        assert all(piece not in output for piece in pieces), f"a log line holds {secret[:6]}..."
    encoded = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert encoded not in output


OTHER_SECRET = b"rotated-secret-rotated-secret-rotated!!"


def test_sighup_rereads_the_key_file_and_refuses_a_bad_one(tmp_path, daemon_factory):
    """A rotated secret applies after SIGHUP; a broken one is refused, logged naming the file, and the key stays."""
    secret = tmp_path / "jwt.secret"
    secret.write_bytes(SECRET)
    users = tmp_path / "users.htpasswd"
    users.write_bytes(b"alice:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)) + b"\n")
    daemon = daemon_factory(CONFIG.format(secret=secret, users=users))
    old = {"Authorization": f"Bearer {make_token()}"}
    new = {"Authorization": "Bearer " + jwt.encode({"sub": "bob", "exp": int(time.time()) + 3600}, OTHER_SECRET)}
    assert status_of(daemon.ws_url("/echo"), additional_headers=old) == 101
    secret.write_bytes(OTHER_SECRET)
    daemon.process.send_signal(signal.SIGHUP)
    wait_for_output(daemon, "reload done")
    assert status_of(daemon.ws_url("/echo"), additional_headers=old) == 401
    assert status_of(daemon.ws_url("/echo"), additional_headers=new) == 101
    secret.write_bytes(b"too short\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_for_output(daemon, "reload done", count=2)
    assert f"endpoints[0].auth.secret_file: expected a file holding a secret of at least 32 bytes, got '{secret}'" in (
        daemon.output()
    )
    assert status_of(daemon.ws_url("/echo"), additional_headers=new) == 101


def test_a_bad_key_file_stops_the_start_naming_it(tmp_path, run_daemon_expecting_exit):
    """A public key given as an HMAC secret stops the daemon before it listens, naming the file."""
    secret = tmp_path / "public.pem"
    secret.write_bytes(b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n")
    users = tmp_path / "users.htpasswd"
    users.write_bytes(b"alice:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)) + b"\n")
    exited = run_daemon_expecting_exit(CONFIG.format(secret=secret, users=users))
    assert exited.returncode == 1
    assert f"endpoints[0].auth.secret_file: expected a file holding a secret of at least 32 bytes, got '{secret}'" in (
        exited.stderr
    )
    assert "a PEM key, which is no HMAC secret" in exited.stderr and "Traceback" not in exited.stderr
