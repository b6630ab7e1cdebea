"""htpasswd files: user:bcrypt-hash lines only; anything else is refused with its line named."""

from __future__ import annotations

import bcrypt
import pytest

from wsdaemon.auth.errors import KeyFileError
from wsdaemon.auth.htpasswd import load_htpasswd, parse_htpasswd

ALICE = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(4))
APACHE = ALICE.replace(b"$2b$", b"$2y$")  # what htpasswd -B writes


def refused(data: bytes) -> str:
    """The message for a file holding ``data``."""
    with pytest.raises(KeyFileError) as info:
        parse_htpasswd(data, "htpasswd_file", "/etc/wsdaemon/users")
    assert "'/etc/wsdaemon/users'" in str(info.value)
    return info.value.problem


def test_users_comments_and_blank_lines():
    """Each user:hash line is a user; comments and blank lines are skipped; $2y$ (Apache) is accepted."""
    data = b"# staff\n\nalice:" + ALICE + b"\r\nbob:" + APACHE + b"\n"
    assert parse_htpasswd(data, "htpasswd_file", "users") == {"alice": ALICE, "bob": APACHE}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"carol:$apr1$abc$defghijklmnopqrstuvwx", "line 2 (user 'carol'): an apr1 MD5 hash"),
        (b"carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "line 2 (user 'carol'): a SHA-1 hash"),
        (b"carol:$2b$04$tooshort", "line 2 (user 'carol'): a malformed bcrypt hash"),
        (b"carol", "line 2: not user:hash"),
        (b":" + ALICE, "line 2: not user:hash"),
        (b"alice:" + ALICE, "line 2: user 'alice' is listed twice"),
    ],
)
def test_bad_lines_are_refused_naming_the_line(line, problem):
    """A weak hash, a malformed line or a duplicate user stops the load, naming the line (never a hash)."""
    message = refused(b"alice:" + ALICE + b"\n" + line + b"\n")
    assert message == problem
    assert ALICE.decode() not in message


def test_file_without_users_is_refused():
    """A file of only comments would lock everyone out: refused."""
    assert refused(b"# nobody\n") == "no users in it"


def test_unreadable_file_names_the_path(tmp_path):
    """A password file that does not exist is refused with its path."""
    with pytest.raises(KeyFileError) as info:
        load_htpasswd("htpasswd_file", str(tmp_path / "absent"))
    assert "No such file or directory" in str(info.value)
