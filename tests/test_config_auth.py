"""``[endpoints.auth]``: the shared keys checked by the config, the rest handed to the authenticator."""

from __future__ import annotations

import pytest

from wsdaemon.config import AuthConfig, ConfigError, parse_config

SOURCE = "/etc/wsdaemon/wsdaemon.toml"
ENDPOINT = '[[endpoints]]\npath = "/chat"\nhandler = "echo"\n'


def auth_of(text: str) -> AuthConfig:
    """The auth settings of the one endpoint, with ``text`` as its [endpoints.auth] body."""
    return parse_config(ENDPOINT + "[endpoints.auth]\n" + text, SOURCE).endpoints[0].auth


def test_no_auth_table_means_no_authentication():
    """An endpoint without [endpoints.auth] uses type "none"."""
    assert parse_config(ENDPOINT, SOURCE).endpoints[0].auth == AuthConfig()
    assert AuthConfig().type == "none"


def test_shared_keys_and_the_authenticators_own_options():
    """type, close_on_expiry and timeout_seconds are read here; every other key goes to the authenticator."""
    auth = auth_of('type = "jwt"\nclose_on_expiry = true\ntimeout_seconds = 2\nalgorithms = ["HS256"]\n')
    assert (auth.type, auth.close_on_expiry, auth.timeout_seconds) == ("jwt", True, 2.0)
    assert dict(auth.options) == {"algorithms": ["HS256"]}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "type = 5\n",
            'endpoints[0].auth.type: expected the name of an authenticator, such as "jwt", "basic" or "none", got 5',
        ),
        (
            'type = "jwt"\nclose_on_expiry = "yes"\n',
            "endpoints[0].auth.close_on_expiry: expected true or false, got 'yes'",
        ),
        ("timeout_seconds = 0\n", "endpoints[0].auth.timeout_seconds: expected a number from 0.1 to 300.0, got 0"),
        (
            "timeout_seconds = true\n",
            "endpoints[0].auth.timeout_seconds: expected a number from 0.1 to 300.0, got true",
        ),
    ],
)
def test_bad_shared_keys_name_file_key_expected_and_got(text, problem):
    """Each bad shared key is reported with the file, its key path, what was expected and what was found."""
    with pytest.raises(ConfigError) as info:
        auth_of(text)
    assert str(info.value) == f"invalid configuration in {SOURCE}:\n  {problem}"


def test_auth_that_is_not_a_table_is_refused():
    """auth = "jwt" (a string) is refused: it is a table."""
    with pytest.raises(ConfigError) as info:
        parse_config(ENDPOINT + 'auth = "jwt"\n', SOURCE)
    assert "endpoints[0].auth: expected a table ([endpoints.auth]), got 'jwt'" in str(info.value)
