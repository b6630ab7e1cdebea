"""htpasswd-style password files (``user:hash`` per line) with bcrypt hashes only.

``htpasswd -B`` (Apache) writes such a file; so does ``python -c 'import bcrypt; ...'``. Other
hash kinds htpasswd knows (apr1 MD5, SHA-1, crypt) are fast to brute-force, so a file holding
one is refused, with the line and user named, rather than accepted weakly. Lines starting with
``#`` and blank lines are ignored.
"""

from __future__ import annotations

import re

from wsdaemon.auth.errors import KeyFileError
from wsdaemon.auth.keys import read_key_file

#: A password file of many users is still small; a bigger file is the wrong file.
MAX_PASSWORD_FILE_BYTES = 16 * 1024 * 1024
#: A bcrypt hash: $2a$, $2b$ or $2y$ (htpasswd -B), a cost of 04-31, then 22 + 31 characters.
_BCRYPT = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_EXPECTED = "an htpasswd file of user:bcrypt-hash lines (htpasswd -B)"


def hash_kind(text: bytes) -> str:
    """What kind of hash ``text`` looks like, in words, for the error about it."""
    if text.startswith(b"$apr1$"):
        return "an apr1 MD5 hash"
    if text.startswith(b"{SHA}"):
        return "a SHA-1 hash"
    if text.startswith(b"$argon2"):
        return "an argon2 hash (not supported here)"
    if text.startswith(b"$2"):
        return "a malformed bcrypt hash"
    return "not a bcrypt hash"


def parse_htpasswd(data: bytes, option: str, path: str) -> dict[str, bytes]:
    """The users and their bcrypt hashes in ``data`` (the contents of ``path``).

    Raises:
        KeyFileError: a line is not ``user:bcrypt-hash``, a user is listed twice, or none is.
    """
    users: dict[str, bytes] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        name, colon, hashed = line.partition(b":")
        try:
            user = name.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyFileError(option, _EXPECTED, path, f"line {number}: the user name is not UTF-8") from None
        if not colon or not user:
            raise KeyFileError(option, _EXPECTED, path, f"line {number}: not user:hash")
        if not _BCRYPT.fullmatch(hashed):
            raise KeyFileError(option, _EXPECTED, path, f"line {number} (user {user!r}): {hash_kind(hashed)}")
        if user in users:
            raise KeyFileError(option, _EXPECTED, path, f"line {number}: user {user!r} is listed twice")
        users[user] = hashed
    if not users:
        raise KeyFileError(option, _EXPECTED, path, "no users in it")
    return users


def load_htpasswd(option: str, path: str) -> dict[str, bytes]:
    """Read and parse the password file named by ``option``.

    Raises:
        KeyFileError: it cannot be read or parsed (the file and the line are named).
    """
    return parse_htpasswd(read_key_file(option, _EXPECTED, path, MAX_PASSWORD_FILE_BYTES), option, path)
