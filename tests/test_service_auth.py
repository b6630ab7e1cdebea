"""Authenticators in the service: built at start (a bad key file stops it), re-read on SIGHUP (a bad one refused)."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
from twisted.logger import LogLevel

from tests.auth.support import SECRET, token
from tests.test_lifecycle import PLAIN, Daemon, logged, texts
from tests.web.stack import parse_response, upgrade_request
from wsdaemon.config import ConfigError

__all__ = ["logged"]  # the fixture, imported for the tests below

OTHER_SECRET = b"another-secret-another-secret-another!"
JWT = (
    PLAIN
    + '[[endpoints]]\npath = "/chat"\nhandler = "echo"\n[endpoints.auth]\ntype = "jwt"\nalgorithms = ["HS256"]\nsecret_file = "{}"\n'
)
BASIC = (
    PLAIN + '[[endpoints]]\npath = "/chat"\nhandler = "echo"\n[endpoints.auth]\ntype = "basic"\nhtpasswd_file = "{}"\n'
)


def status(daemon: Daemon, presented: str) -> int:
    """The status the daemon answers an upgrade to /chat carrying ``presented`` with."""
    protocol = daemon.connect()
    protocol.dataReceived(upgrade_request("/chat", headers=[("Authorization", f"Bearer {presented}")]))
    return parse_response(protocol.transport.value()).status


def test_bad_key_file_stops_the_start_naming_the_file(tmp_path: Path):
    """A secret file too short for HS256 is a startup error naming the key, the file and the problem."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"short\n")
    with pytest.raises(ConfigError) as info:
        Daemon(JWT.format(secret))
    assert str(info.value) == (
        "invalid configuration in test.toml:\n"
        f"  endpoints[0].auth.secret_file: expected a file holding a secret of at least 32 bytes, "
        f"got '{secret}' (5 bytes; HS256 needs 32 (RFC 7518 §3.2))"
    )


def test_bad_htpasswd_file_stops_the_start_naming_the_line(tmp_path: Path):
    """A password file with an MD5 hash is a startup error naming the file and the line."""
    users = tmp_path / "users"
    users.write_bytes(b"alice:$apr1$xyz$0123456789abcdefghijkl\n")
    with pytest.raises(ConfigError) as info:
        Daemon(BASIC.format(users))
    assert "endpoints[0].auth.htpasswd_file: expected an htpasswd file" in str(info.value)
    assert f"'{users}' (line 1 (user 'alice'): an apr1 MD5 hash)" in str(info.value)


def test_unknown_auth_option_stops_the_start():
    """A misspelt jwt option is reported by its key with the options jwt has."""
    with pytest.raises(ConfigError) as info:
        Daemon(JWT.format("/unused") + 'algoritms = ["HS256"]\n')
    assert "endpoints[0].auth.algoritms: expected an option of authenticator 'jwt': algorithms," in str(info.value)


def test_sighup_rereads_the_key_file(tmp_path: Path):
    """After the secret file is replaced and SIGHUP arrives, tokens verify with the new secret only."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    daemon = Daemon(JWT.format(secret)).start()
    assert status(daemon, token(SECRET)) == 101
    secret.write_bytes(OTHER_SECRET)
    assert daemon.lifecycle.reload()
    assert status(daemon, token(SECRET)) == 401
    assert status(daemon, token(OTHER_SECRET)) == 101


def test_a_bad_key_file_on_sighup_is_refused_and_the_old_key_kept(tmp_path: Path, logged):
    """A key file broken before SIGHUP is refused, logged naming the file, and the running key still verifies."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    daemon = Daemon(JWT.format(secret)).start()
    secret.write_bytes(b"")
    assert not daemon.lifecycle.reload()
    errors = texts(logged, LogLevel.error)
    assert any("endpoints[0].auth.secret_file" in line and f"'{secret}' (empty)" in line for line in errors)
    assert status(daemon, token(SECRET)) == 101


def test_sighup_rereads_the_htpasswd_file(tmp_path: Path):
    """A user added to the htpasswd file is known after SIGHUP (the new Runtime's authenticator read the file)."""
    users = tmp_path / "users"
    users.write_bytes(b"alice:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)) + b"\n")
    daemon = Daemon(BASIC.format(users)).start()
    before = daemon.runtime.authenticators["/chat"]
    users.write_bytes(users.read_bytes() + b"bob:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)) + b"\n")
    assert daemon.lifecycle.reload()
    after = daemon.runtime.authenticators["/chat"]
    assert (sorted(before.users), sorted(after.users)) == (["alice"], ["alice", "bob"])
