"""The [broker] and [api] tables (wsdaemon.config.broker): every problem named by key, expected and got."""

from __future__ import annotations

import pytest

from wsdaemon.config import ConfigError, parse_config


def problems(text: str) -> dict[str, tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "test.toml")
    return {problem.key: (problem.expected, problem.got) for problem in raised.value.problems}


def test_no_broker_and_no_api_by_default():
    """Without the tables, channels stay in-process and there is no API."""
    config = parse_config("", "test.toml")
    assert (config.broker, config.api) == (None, None)


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("redis://10.0.0.5:6390/2", ("redis", "10.0.0.5", 6390, 2, "", None)),
        ("redis://cache", ("redis", "cache", 6379, 0, "", None)),
        ("rediss://app@cache.example.com:6380/1", ("rediss", "cache.example.com", 6380, 1, "", "app")),
        ("unix:/run/redis/redis.sock?db=3", ("unix", "127.0.0.1", 6379, 3, "/run/redis/redis.sock", None)),
        ("unix:/run/redis.sock", ("unix", "127.0.0.1", 6379, 0, "/run/redis.sock", None)),
    ],
)
def test_redis_urls_are_split_into_their_parts(url, parts):
    """redis://, rediss:// (with a user) and unix: URLs give scheme, host, port, database, socket path and user."""
    broker = parse_config(f'[broker]\nurl = "{url}"\n', "test.toml").broker
    assert (broker.scheme, broker.host, broker.port, broker.db, broker.path, broker.username) == parts
    assert (broker.prefix, broker.required, broker.max_pending_messages) == ("wsdaemon:", False, 10000)


@pytest.mark.parametrize(
    "url", ["http://cache:6379", "redis://", "redis://h/x", "redis://h:99999/0", "unix:relative.sock", "unix:/s?x=1", 5]
)
def test_a_bad_url_names_the_forms_expected(url):
    """A URL that is not redis://, rediss:// or unix: (or a bad port or database) is refused with the forms."""
    value = f'"{url}"' if isinstance(url, str) else url
    expected, _ = problems(f"[broker]\nurl = {value}\n")["broker.url"]
    assert "redis://HOST:PORT/DB" in expected and "unix:" in expected


def test_a_password_in_the_url_is_refused_without_echoing_it():
    """redis://:secret@host is refused (use password_file), and the error does not repeat the password."""
    expected, got = problems('[broker]\nurl = "redis://:hunter22@cache/0"\n')["broker.url"]
    assert "password_file" in expected and "hunter22" not in got


def test_broker_values_are_checked_by_type_and_range():
    """Numbers out of range, a non-boolean required, a prefix with spaces and unknown keys are all reported at once."""
    found = problems(
        '[broker]\nurl = "redis://h/0"\nmax_pending_messages = -1\nconnect_timeout_seconds = true\n'
        'required = "yes"\nprefix = "with space"\nreconect_max_seconds = 1\n'
    )
    assert set(found) == {
        "broker.max_pending_messages",
        "broker.connect_timeout_seconds",
        "broker.required",
        "broker.prefix",
        "broker.reconect_max_seconds",
    }
    assert "did you mean reconnect_max_seconds" in found["broker.reconect_max_seconds"][1]


def test_reconnect_delays_must_be_ordered():
    """reconnect_initial_seconds above reconnect_max_seconds is refused."""
    found = problems('[broker]\nurl = "redis://h/0"\nreconnect_initial_seconds = 5\nreconnect_max_seconds = 1\n')
    assert "broker.reconnect_initial_seconds" in found


def test_tls_ca_file_needs_rediss():
    """tls_ca_file with a plain redis:// URL is refused."""
    assert "broker.tls_ca_file" in problems('[broker]\nurl = "redis://h/0"\ntls_ca_file = "/ca.pem"\n')


def test_api_defaults_and_listeners():
    """[api] with a token file serves /api/publish and /api/presence; listeners must name configured listeners."""
    config = parse_config('[api]\ntoken_file = "/t"\nlisteners = ["tcp:8080:interface=127.0.0.1"]\n', "test.toml")
    assert (config.api.publish_path, config.api.presence_path, config.api.listeners) == (
        "/api/publish",
        "/api/presence",
        ("tcp:8080:interface=127.0.0.1",),
    )
    expected, got = problems('[api]\ntoken_file = "/t"\nlisteners = ["tcp:9"]\n')["api.listeners[0]"]
    assert "tcp:8080:interface=127.0.0.1" in expected and got == "'tcp:9'"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("", "api.token_file"),
        ('token_file = "/t"\npublish_path = "/echo/x"', "api.publish_path"),
        ('token_file = "/t"\npresence_path = "/healthz"', "api.presence_path"),
        ('token_file = "/t"\npublish_path = "no-slash"', "api.publish_path"),
        ('token_file = "/t"\npublish_path = "/a/p"\npresence_path = "/a/p"', "api.presence_path"),
    ],
)
def test_api_paths_may_not_clash_and_the_token_file_is_required(table, key):
    """A missing token_file, or an API path that is not a path or is taken by an endpoint, /healthz or the other API path, is named."""
    assert key in problems(f"[api]\n{table}\n")
