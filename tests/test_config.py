"""Tests for wsdaemon.config: TOML in, frozen dataclasses or one ConfigError out."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from wsdaemon.allocator import DEFAULT_CACHE_BYTES, DEFAULT_RELEASE_AFTER_CLOSED
from wsdaemon.config import (
    DEFAULT_LISTEN,
    LISTENER_LIMITS,
    Config,
    ConfigError,
    EndpointConfig,
    ListenerConfig,
    MetricsConfig,
    Problem,
    ProcessConfig,
    StaticMount,
    default_config,
    load_config,
    parse_config,
    worker_count,
)
from wsdaemon.core.deflate import DeflateSettings
from wsdaemon.core.limits import Limits, limit_help, limit_ranges

SOURCE = "/etc/wsdaemon/wsdaemon.toml"
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "etc" / "wsdaemon.toml"
ECHO = '[[endpoints]]\npath = "/echo"\nhandler = "echo"\n'


def config_error(text: str, listen: tuple[str, ...] = ()) -> ConfigError:
    """Parse text that must be rejected, returning the single ConfigError raised."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, SOURCE, listen)
    return info.value


def assert_reported(error: ConfigError, key: str, expected: str, got: str | None = None) -> None:
    """The error names its file and has a line for ``key`` saying what was expected (and got)."""
    text = str(error)
    assert text.startswith(f"invalid configuration in {error.source}:\n"), text
    lines = [line for line in text.splitlines()[1:] if line.startswith(f"  {key}: expected ")]
    assert any(expected in line for line in lines), text
    if got is not None:
        assert any(line.endswith(f", got {got}") or f", got {got} (" in line for line in lines), text


def without_source(config: Config) -> Config:
    """The config as the defaults would have it, to compare a loaded file with default_config()."""
    return dataclasses.replace(config, source=None)


# Defaults and overrides


def test_default_config_is_echo_and_chat_on_localhost() -> None:
    """Without a file the daemon serves /echo, the /chat/ channels and the demo page on 127.0.0.1:8080."""
    config = default_config()
    assert config.source is None
    assert config.listeners == (ListenerConfig(DEFAULT_LISTEN),)
    assert DEFAULT_LISTEN == "tcp:8080:interface=127.0.0.1"
    assert config.limits == Limits()
    chat = {"channel_from_path": True, "envelope": "json", "history_size": 100}
    assert config.endpoints == (
        EndpointConfig("/echo", "echo", {}, (), (), Limits()),
        EndpointConfig("/chat", "broadcast", chat, (), (), Limits()),
    )
    assert config.demo_page is True


def test_load_config_without_path_gives_defaults() -> None:
    """load_config(None) is the built-in defaults."""
    assert load_config(None) == default_config()


def test_empty_file_gives_defaults_with_its_source() -> None:
    """An empty file changes nothing but records where the config came from."""
    config = parse_config("", SOURCE)
    assert config.source == SOURCE
    assert without_source(config) == default_config()


def test_partial_override_keeps_other_defaults() -> None:
    """A file that names one limit changes only that limit; everything else keeps its default."""
    config = parse_config("[limits]\nmax_message_bytes = 65536\n", SOURCE)
    assert config.limits == Limits(max_message_bytes=65536)
    assert config.listeners == default_config().listeners
    assert config.demo_page is True
    assert [e.path for e in config.endpoints] == ["/echo", "/chat"]


def test_default_endpoint_uses_file_global_limits() -> None:
    """The built-in /echo endpoint lives under the file's [limits], not the built-in ones."""
    config = parse_config("[limits]\nidle_timeout_seconds = 30\n", SOURCE)
    assert config.endpoints[0].limits.idle_timeout_seconds == 30.0


def test_float_limit_accepts_integer_as_float() -> None:
    """A seconds limit written as an integer is accepted and stored as a float."""
    config = parse_config("[limits]\nclose_timeout_seconds = 5\n", SOURCE)
    assert config.limits.close_timeout_seconds == 5.0
    assert isinstance(config.limits.close_timeout_seconds, float)


def test_allocator_cache_defaults_and_can_be_set_or_turned_off() -> None:
    """[memory] allocator_cache_bytes: 16 MiB by default, any value in range, 0 for glibc's own."""
    assert default_config().allocator_cache_bytes == DEFAULT_CACHE_BYTES == 16 * 2**20
    assert parse_config("[memory]\nallocator_cache_bytes = 4194304\n", SOURCE).allocator_cache_bytes == 4 * 2**20
    assert parse_config("[memory]\nallocator_cache_bytes = 0\n", SOURCE).allocator_cache_bytes == 0


@pytest.mark.parametrize("value", ["1024", "67108864", "-1", '"16M"', "1.5e7", "true"])
def test_allocator_cache_out_of_range_is_reported(value: str) -> None:
    """A size glibc would refuse (or not a whole number) names the key and the accepted range."""
    error = config_error(f"[memory]\nallocator_cache_bytes = {value}\n")
    assert_reported(error, "memory.allocator_cache_bytes", "0 or an integer from 131072 to 33554432")


def test_release_after_closed_connections_defaults_and_can_be_set_or_turned_off() -> None:
    """[memory] release_after_closed_connections: 1000 by default, any whole number, 0 for never."""
    assert default_config().release_after_closed_connections == DEFAULT_RELEASE_AFTER_CLOSED == 1000
    text = "[memory]\nrelease_after_closed_connections = {}\n"
    assert parse_config(text.format(50), SOURCE).release_after_closed_connections == 50
    assert parse_config(text.format(0), SOURCE).release_after_closed_connections == 0


@pytest.mark.parametrize("value", ["-1", '"1000"', "1.5", "true"])
def test_release_after_closed_connections_bad_value_is_reported(value: str) -> None:
    """A negative, fractional or non-number count names the key and what it accepts."""
    error = config_error(f"[memory]\nrelease_after_closed_connections = {value}\n")
    assert_reported(error, "memory.release_after_closed_connections", "0 (never) or a positive integer")


def test_unknown_memory_key_is_reported() -> None:
    """A misspelt key in [memory] is an error, not ignored."""
    assert "memory.allocator_cache" in str(config_error("[memory]\nallocator_cache = 1\n"))


def test_demo_page_can_be_turned_off() -> None:
    """[http] demo_page = false is honoured."""
    assert parse_config("[http]\ndemo_page = false\n", SOURCE).demo_page is False


def test_listeners_list_replaces_default_whole() -> None:
    """A [[listeners]] list replaces the default listener rather than adding to it."""
    text = '[[listeners]]\nendpoint = "tcp:9000"\n[[listeners]]\nendpoint = "systemd:domain=INET:index=0"\n'
    config = parse_config(text, SOURCE)
    assert config.listeners == (ListenerConfig("tcp:9000"), ListenerConfig("systemd:domain=INET:index=0"))


def test_endpoints_list_replaces_default_whole() -> None:
    """An [[endpoints]] list replaces the default /echo endpoint."""
    text = '[[endpoints]]\npath = "/chat"\nhandler = "broadcast"\n'
    config = parse_config(text, SOURCE)
    assert [(e.path, e.handler) for e in config.endpoints] == [("/chat", "broadcast")]


def test_endpoint_fields_are_parsed() -> None:
    """Subprotocols, origins and options come through in order, as tuples and a read-only mapping."""
    text = ECHO + (
        'subprotocols = ["chat.v2", "chat.v1"]\n'
        'allowed_origins = ["https://example.com", "http://localhost:8080", "*"]\n'
        '[endpoints.options]\ngreeting = "hi"\nnested = { a = 1 }\n'
    )
    endpoint = parse_config(text, SOURCE).endpoints[0]
    assert endpoint.subprotocols == ("chat.v2", "chat.v1")
    assert endpoint.allowed_origins == ("https://example.com", "http://localhost:8080", "*")
    assert endpoint.options == {"greeting": "hi", "nested": {"a": 1}}
    with pytest.raises(TypeError):
        endpoint.options["greeting"] = "changed"  # type: ignore[index]


def test_config_values_are_frozen() -> None:
    """Config objects cannot be changed after validation."""
    config = default_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.demo_page = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.endpoints[0].path = "/other"  # type: ignore[misc]


def test_listen_override_replaces_file_listeners() -> None:
    """Command-line --listen values win over the file's [[listeners]]."""
    text = '[[listeners]]\nendpoint = "tcp:9000"\n'
    config = parse_config(text, SOURCE, ["tcp:1234", "tcp:1235"])
    assert config.listeners == (ListenerConfig("tcp:1234"), ListenerConfig("tcp:1235"))


def test_listen_override_replaces_default_listener() -> None:
    """--listen without a config file replaces the default listener."""
    assert load_config(None, ["tcp:1234"]).listeners == (ListenerConfig("tcp:1234"),)


def test_listen_override_rejects_empty_string() -> None:
    """An empty --listen value is reported against the command line."""
    with pytest.raises(ConfigError) as info:
        load_config(None, [""])
    assert info.value.source == "command-line options"
    assert_reported(info.value, "--listen[0]", "a Twisted server endpoint string", "''")


def test_listen_override_problems_join_file_problems() -> None:
    """A bad --listen value is reported together with the file's own problems."""
    error = config_error("[limits]\nmax_fragments = 0\n", ("tcp:1", "tcp:1"))
    assert_reported(error, "limits.max_fragments", "an integer from 1 to 4294967296")
    assert_reported(error, "--listen[1]", "an endpoint not already used by --listen[0]", "'tcp:1'")


def test_endpoint_limits_merge_over_global() -> None:
    """An endpoint's limits table overrides the global [limits], which overrides the defaults."""
    text = "[limits]\nmax_message_bytes = 2048\nclose_timeout_seconds = 3.5\n" + ECHO
    text += "[endpoints.limits]\nmax_message_bytes = 1024\nidle_timeout_seconds = 60\n"
    config = parse_config(text, SOURCE)
    limits = config.endpoints[0].limits
    assert limits == Limits(max_message_bytes=1024, close_timeout_seconds=3.5, idle_timeout_seconds=60.0)
    assert config.limits == Limits(max_message_bytes=2048, close_timeout_seconds=3.5)


def test_endpoint_without_limits_table_uses_global_limits() -> None:
    """An endpoint with no limits table gets the global limits unchanged."""
    config = parse_config("[limits]\nmax_fragments = 8\n" + ECHO, SOURCE)
    assert config.endpoints[0].limits == config.limits == Limits(max_fragments=8)


@pytest.mark.parametrize("value", [125, 4096, 2**40])
def test_fragment_outgoing_bytes_any_value_in_range(value: int) -> None:
    """fragment_outgoing_bytes needs no cross-check: any in-range value is fine, even above max_frame_bytes."""
    text = f"[limits]\nfragment_outgoing_bytes = {value}\nmax_frame_bytes = 125\n"
    assert parse_config(text, SOURCE).limits.fragment_outgoing_bytes == value


# The file itself


def test_invalid_toml_names_file_and_position() -> None:
    """Text that is not TOML is one problem keyed "(file)" carrying tomllib's line and column."""
    error = config_error("[limits]\nmax_message_bytes = = 3\n")
    assert error.problems[0].key == "(file)"
    assert error.problems[0].expected == "valid TOML"
    assert "line 2" in error.problems[0].got
    assert_reported(error, "(file)", "valid TOML")


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming the file, not an OSError."""
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == path
    assert_reported(info.value, "(file)", "a readable file", "No such file or directory")


def test_directory_is_not_a_readable_file(tmp_path: Path) -> None:
    """A directory given as the config file is reported as unreadable."""
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert_reported(info.value, "(file)", "a readable file")


def test_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    """TOML is UTF-8; other bytes are a problem with the file, not a crash."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[[endpoints]]\npath = "/caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert_reported(info.value, "(file)", "valid TOML (UTF-8 text)")


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    """load_config reads the named file (a UTF-8 BOM is tolerated) and records it as the source."""
    path = tmp_path / "wsdaemon.toml"
    path.write_bytes(b"\xef\xbb\xbf[http]\ndemo_page = false\n")
    config = load_config(str(path), ["tcp:1234"])
    assert config.source == str(path)
    assert config.demo_page is False
    assert config.listeners == (ListenerConfig("tcp:1234"),)


# Unknown keys and wrong shapes


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("listen = 1\n", "listen", "one of: listeners, http, limits, endpoints"),
        ("[http]\ndemo = true\n", "http.demo", "one of: demo_page"),
        ("[limits]\nmax_msg_bytes = 1\n", "limits.max_msg_bytes", "one of: max_message_bytes, max_frame_bytes"),
        ('[[listeners]]\nendpoint = "tcp:1"\nport = 1\n', "listeners[0].port", "one of: endpoint"),
        (ECHO + "subprotocol = []\n", "endpoints[0].subprotocol", "one of: path, handler, options"),
        (ECHO + "[endpoints.limits]\nfoo = 1\n", "endpoints[0].limits.foo", "one of: max_message_bytes"),
        ('"odd key" = 1\n', '"odd key"', "one of: listeners"),
    ],
)
def test_unknown_key_is_reported(text: str, key: str, expected: str) -> None:
    """Every table rejects keys it does not know, naming the key and the keys it accepts."""
    assert_reported(config_error(text), key, expected, "an unknown key")


def test_unknown_key_suggests_the_nearest_known_key() -> None:
    """A misspelt key gets a "did you mean" hint."""
    error = config_error("[limits]\nmax_mesage_bytes = 1\n")
    assert_reported(error, "limits.max_mesage_bytes", "one of:", "an unknown key (did you mean max_message_bytes?)")


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("http = 1\n", "http", "a table"),
        ("limits = [1]\n", "limits", "a table"),
        ('listeners = "tcp:1"\n', "listeners", "an array of tables ([[listeners]])"),
        ("endpoints = 3\n", "endpoints", "an array of tables ([[endpoints]])"),
        ("listeners = [1]\n", "listeners[0]", "a table"),
        ('endpoints = ["/echo"]\n', "endpoints[0]", "a table"),
        (ECHO + "options = 3\n", "endpoints[0].options", "a table of handler options"),
        (ECHO + "limits = []\n", "endpoints[0].limits", "a table"),
        ('[http]\ndemo_page = "yes"\n', "http.demo_page", "true or false"),
    ],
)
def test_wrong_shape_is_reported(text: str, key: str, expected: str) -> None:
    """A value of the wrong TOML type is reported with what the key needs."""
    assert_reported(config_error(text), key, expected)


# Limits: types and ranges


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("true", "true"),
        ("1048576.0", "1048576.0"),
        ('"big"', "'big'"),
        ("[1]", "[1]"),
        ("0", "0"),
        (str(2**40 + 1), str(2**40 + 1)),
    ],
)
def test_integer_limit_rejects_bad_values(value: str, got: str) -> None:
    """An integer limit takes an integer in range: not a bool, float, string, list, or out-of-range number."""
    error = config_error(f"[limits]\nmax_message_bytes = {value}\n")
    assert_reported(error, "limits.max_message_bytes", "an integer from 1 to 1099511627776", got)


@pytest.mark.parametrize(
    ("value", "got"),
    [("false", "false"), ('"10s"', "'10s'"), ("0.0", "0.0"), ("nan", "nan"), ("inf", "inf"), ("3601", "3601")],
)
def test_float_limit_rejects_bad_values(value: str, got: str) -> None:
    """A seconds limit takes a finite number in range, not a bool, string, NaN or infinity."""
    error = config_error(f"[limits]\nclose_timeout_seconds = {value}\n")
    assert_reported(error, "limits.close_timeout_seconds", "a number from 0.1 to 3600.0", got)


def limits_text(name: str, value: float) -> str:
    """A [limits] table setting one limit, with write buffers that pass their cross-check."""
    values: dict[str, float] = {"write_buffer_high_bytes": 1024, "write_buffer_max_bytes": 2**32, name: value}
    return "[limits]\n" + "".join(f"{key} = {number!r}\n" for key, number in values.items())


def test_every_limit_is_range_checked() -> None:
    """Each Limits field accepts its minimum and maximum and rejects just beyond them."""
    for name, (minimum, maximum) in limit_ranges().items():
        assert getattr(parse_config(limits_text(name, minimum), SOURCE).limits, name) == minimum
        assert getattr(parse_config(limits_text(name, maximum), SOURCE).limits, name) == maximum
        for bad in (minimum / 2 if isinstance(minimum, float) else minimum - 1, maximum + 1):
            assert_reported(config_error(limits_text(name, bad)), f"limits.{name}", f"from {minimum} to {maximum}")


@pytest.mark.parametrize("name", sorted(LISTENER_LIMITS))
def test_listener_wide_limit_rejected_in_endpoint(name: str) -> None:
    """A listener-wide limit in an endpoint's limits table is an error pointing at [limits]."""
    default = getattr(Limits(), name)
    error = config_error(ECHO + f"[endpoints.limits]\n{name} = {default!r}\n")
    assert_reported(error, f"endpoints[0].limits.{name}", f"{name} is listener-wide and belongs in [limits]")


def test_listener_limits_are_limits_fields() -> None:
    """Every listener-wide name is a real Limits field, so the rule cannot silently rot."""
    assert LISTENER_LIMITS.issubset(limit_ranges())


def test_endpoint_limit_out_of_range_is_reported() -> None:
    """Per-endpoint limits are range-checked like global ones."""
    error = config_error(ECHO + "[endpoints.limits]\nmax_fragments = 0\n")
    assert_reported(error, "endpoints[0].limits.max_fragments", "an integer from 1 to 4294967296", "0")


def test_write_buffer_high_above_max_is_rejected() -> None:
    """The pause threshold must not be above the hard cap, or a slow peer is dropped before backpressure."""
    error = config_error("[limits]\nwrite_buffer_high_bytes = 8192\nwrite_buffer_max_bytes = 4096\n")
    assert_reported(error, "limits.write_buffer_high_bytes", "at most write_buffer_max_bytes (4096)", "8192")


def test_write_buffer_high_above_default_max_is_rejected() -> None:
    """Raising only the high-water mark above the default hard cap is caught too."""
    error = config_error(f"[limits]\nwrite_buffer_high_bytes = {8 * 2**20}\n")
    assert_reported(error, "limits.write_buffer_high_bytes", f"at most write_buffer_max_bytes ({4 * 2**20})")


def test_write_buffer_cross_check_blames_the_key_written() -> None:
    """Lowering only the hard cap below the high-water mark is reported on the cap, the key the user wrote."""
    error = config_error("[limits]\nwrite_buffer_max_bytes = 2048\n")
    assert_reported(error, "limits.write_buffer_max_bytes", "at least write_buffer_high_bytes (262144)", "2048")


def test_write_buffer_cross_check_applies_per_endpoint() -> None:
    """An endpoint override that lowers the hard cap below the global high-water mark is rejected."""
    error = config_error(ECHO + "[endpoints.limits]\nwrite_buffer_max_bytes = 2048\n")
    assert_reported(error, "endpoints[0].limits.write_buffer_max_bytes", "at least write_buffer_high_bytes (262144)")


def test_write_buffer_override_checked_against_global_values() -> None:
    """An endpoint raising its high-water mark above the global hard cap is rejected on that endpoint."""
    text = (
        "[limits]\nwrite_buffer_high_bytes = 65536\nwrite_buffer_max_bytes = 131072\n"
        + ECHO
        + "[endpoints.limits]\nwrite_buffer_high_bytes = 262144\n"
    )
    error = config_error(text)
    assert_reported(error, "endpoints[0].limits.write_buffer_high_bytes", "at most write_buffer_max_bytes (131072)")
    assert [p.key for p in error.problems] == ["endpoints[0].limits.write_buffer_high_bytes"]


def test_write_buffer_cross_check_skipped_when_value_already_bad() -> None:
    """A bad write-buffer value is reported once, without a second, confusing cross-check problem."""
    error = config_error('[limits]\nwrite_buffer_high_bytes = 8192\nwrite_buffer_max_bytes = "4k"\n')
    assert [p.key for p in error.problems] == ["limits.write_buffer_max_bytes"]


# Listeners


def test_empty_listeners_list_is_rejected() -> None:
    """listeners = [] would start a daemon that listens nowhere."""
    assert_reported(config_error("listeners = []\n"), "listeners", "at least one [[listeners]] table", "an empty list")


@pytest.mark.parametrize(
    ("table", "got"),
    [('endpoint = ""', "''"), ('endpoint = "  "', "'  '"), ("endpoint = 8080", "8080"), ("", "missing")],
)
def test_listener_endpoint_must_be_non_empty_string(table: str, got: str) -> None:
    """A listener needs a non-empty endpoint string (Twisted parses it later)."""
    error = config_error(f"[[listeners]]\n{table}\n")
    assert_reported(error, "listeners[0].endpoint", "a Twisted server endpoint string", got)


def test_duplicate_listener_is_rejected() -> None:
    """The same endpoint string twice would fail to bind; it is caught up front."""
    error = config_error('[[listeners]]\nendpoint = "tcp:1"\n[[listeners]]\nendpoint = "tcp:1"\n')
    assert_reported(error, "listeners[1].endpoint", "an endpoint not already used by listeners[0].endpoint")


# Endpoints


def test_empty_endpoints_list_is_rejected() -> None:
    """endpoints = [] would serve no WebSocket at all."""
    assert_reported(config_error("endpoints = []\n"), "endpoints", "at least one [[endpoints]] table", "an empty list")


@pytest.mark.parametrize(
    ("path", "got"),
    [
        ('"echo"', "'echo'"),
        ('"/echo?x=1"', "'/echo?x=1'"),
        ('"/echo#top"', "'/echo#top'"),
        ('"/my echo"', "'/my echo'"),
        ('"/tab\\t"', "'/tab\\t'"),
        ('""', "''"),
        ("3", "3"),
    ],
)
def test_endpoint_path_must_be_a_plain_url_path(path: str, got: str) -> None:
    """A path starts with "/" and has no query, fragment, spaces or control characters."""
    error = config_error(f'[[endpoints]]\npath = {path}\nhandler = "echo"\n')
    assert_reported(error, "endpoints[0].path", 'a URL path starting with "/"', got)


def test_endpoint_path_and_handler_are_required() -> None:
    """An endpoint without path or handler reports both as missing."""
    error = config_error("[[endpoints]]\nsubprotocols = []\n")
    assert_reported(error, "endpoints[0].path", "a URL path", "missing")
    assert_reported(error, "endpoints[0].handler", "the name of a handler plugin", "missing")


@pytest.mark.parametrize(("handler", "got"), [('""', "''"), ("1", "1"), ("[]", "[]")])
def test_endpoint_handler_must_be_a_name(handler: str, got: str) -> None:
    """The handler is a non-empty plugin name (the plugin registry checks it exists later)."""
    error = config_error(f'[[endpoints]]\npath = "/x"\nhandler = {handler}\n')
    assert_reported(error, "endpoints[0].handler", "the name of a handler plugin", got)


def test_duplicate_endpoint_path_is_rejected() -> None:
    """Two endpoints cannot share a path."""
    error = config_error(ECHO + ECHO)
    assert_reported(
        error, "endpoints[1].path", "a path not equal to, inside or above the one used by endpoints[0].path", "'/echo'"
    )


def test_endpoint_cannot_take_healthz() -> None:
    """/healthz belongs to the health check."""
    error = config_error('[[endpoints]]\npath = "/healthz"\nhandler = "echo"\n')
    assert_reported(
        error,
        "endpoints[0].path",
        "a path not equal to, inside or above the one used by the health check",
        "'/healthz'",
    )


def test_endpoint_cannot_take_root_while_demo_page_on() -> None:
    """ "/" belongs to the demo page unless [http] demo_page = false."""
    text = '[[endpoints]]\npath = "/"\nhandler = "echo"\n'
    assert_reported(
        config_error(text), "endpoints[0].path", "a path not equal to, inside or above the one used by the demo page"
    )
    assert parse_config("[http]\ndemo_page = false\n" + text, SOURCE).endpoints[0].path == "/"


@pytest.mark.parametrize(("value", "got"), [('"a b"', "'a b'"), ('"chat,v1"', "'chat,v1'"), ('""', "''"), ("1", "1")])
def test_subprotocol_must_be_http_token(value: str, got: str) -> None:
    """Each subprotocol is an HTTP token, as Sec-WebSocket-Protocol requires (RFC 6455 §4.1)."""
    error = config_error(ECHO + f'subprotocols = ["ok", {value}]\n')
    assert_reported(error, "endpoints[0].subprotocols[1]", "an HTTP token", got)


def test_subprotocols_must_be_a_list() -> None:
    """A bare string instead of a list is reported, not split into characters."""
    error = config_error(ECHO + 'subprotocols = "chat"\n')
    assert_reported(error, "endpoints[0].subprotocols", "a list of strings, each an HTTP token", "'chat'")


@pytest.mark.parametrize(
    "origin",
    [
        "https://example.com/",
        "example.com",
        "https://example.com/app",
        "https://example.com?x",
        "null",
        "",
        "https://user@example.com",
        "https://example.com:99999",
        "https://",
        "https://exa mple.com",
    ],
)
def test_allowed_origin_must_be_star_or_bare_origin(origin: str) -> None:
    """An allowed origin is "*" or scheme://host[:port], exactly what browsers send in Origin."""
    error = config_error(ECHO + f'allowed_origins = ["{origin}"]\n')
    assert_reported(error, "endpoints[0].allowed_origins[0]", '"*" or an origin such as "https://example.com"')


@pytest.mark.parametrize(
    "origin", ["*", "https://example.com", "http://localhost:8080", "HTTPS://Example.COM", "http://[::1]:8080"]
)
def test_allowed_origin_accepts_bare_origins(origin: str) -> None:
    """Well-formed origins and "*" are accepted as written."""
    assert parse_config(ECHO + f'allowed_origins = ["{origin}"]\n', SOURCE).endpoints[0].allowed_origins == (origin,)


def test_allowed_origins_must_be_a_list() -> None:
    """A bare origin string instead of a list is reported."""
    error = config_error(ECHO + 'allowed_origins = "*"\n')
    assert_reported(error, "endpoints[0].allowed_origins", "a list of strings", "'*'")


# The whole report


def test_every_problem_is_reported_at_once() -> None:
    """One ConfigError lists every problem in the file, across sections, in file order."""
    text = (
        'typo = 1\n[http]\ndemo_page = 1\n[limits]\nmax_message_bytes = -1\nidle_timeout_seconds = "1m"\n'
        '[[listeners]]\nendpoint = ""\n'
        '[[endpoints]]\npath = "nope"\nhandler = "echo"\nsubprotocols = ["a b"]\n'
        "[endpoints.limits]\nmax_connections = 5\n"
    )
    error = config_error(text)
    assert [p.key for p in error.problems] == [
        "typo",
        "http.demo_page",
        "limits.max_message_bytes",
        "limits.idle_timeout_seconds",
        "listeners[0].endpoint",
        "endpoints[0].path",
        "endpoints[0].subprotocols[0]",
        "endpoints[0].limits.max_connections",
    ]
    assert len(str(error).splitlines()) == 1 + len(error.problems)


def test_error_text_is_human_not_a_traceback() -> None:
    """str(ConfigError) is plain lines for a person: no traceback, exception names or reprs of objects."""
    error = config_error(
        '[limits]\nmax_message_bytes = "big"\n[[endpoints]]\npath = 3\nhandler = "echo"\n' + "x = " + "1" * 200
    )
    text = str(error)
    assert text.splitlines()[0] == f"invalid configuration in {SOURCE}:"
    for banned in ("Traceback", 'File "', "Error(", "Problem(", "<object", "mappingproxy", "\\n"):
        assert banned not in text
    assert all(line.startswith("  ") and ": expected " in line and ", got " in line for line in text.splitlines()[1:])


def test_error_example_from_the_docs() -> None:
    """The documented message shape: header naming the file, then "key: expected ..., got ..."."""
    error = config_error('[limits]\nmax_message_bytes = "big"\n')
    assert str(error) == (
        f"invalid configuration in {SOURCE}:\n"
        "  limits.max_message_bytes: expected an integer from 1 to 1099511627776, got 'big'"
    )
    assert error.problems == [Problem("limits.max_message_bytes", "an integer from 1 to 1099511627776", "'big'")]
    assert error.source == SOURCE


def test_long_values_are_shortened_in_the_report() -> None:
    """A huge wrong value does not flood the report: "got" is cut to a short excerpt."""
    error = config_error(f'[limits]\nmax_message_bytes = "{"x" * 500}"\n')
    assert len(error.problems[0].got) <= 60
    assert error.problems[0].got.endswith("...")


def test_config_error_survives_pickling() -> None:
    """ConfigError keeps its source and problems through pickle (for process boundaries)."""
    error = config_error("[http]\ndemo_page = 0\n")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.problems, str(copy)) == (error.source, error.problems, str(error))


def test_config_module_does_not_import_twisted() -> None:
    """The config loader stays Twisted-free, so it can be used by tools and tests cheaply."""
    code = "import sys, wsdaemon.config; print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


# The sample file


def test_sample_file_equals_defaults() -> None:
    """Loading etc/wsdaemon.toml unchanged gives exactly the built-in defaults."""
    config = load_config(str(SAMPLE))
    assert config.source == str(SAMPLE)
    assert without_source(config) == default_config()


def test_sample_file_names_every_limit() -> None:
    """Every Limits field is a key in the sample's [limits] table, with its default value."""
    document = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    defaults = Limits()
    assert list(document["limits"]) == [f.name for f in dataclasses.fields(Limits)]
    for name, value in document["limits"].items():
        assert value == getattr(defaults, name)
        assert type(value) is type(getattr(defaults, name))


def test_sample_file_shows_every_key() -> None:
    """The sample has every section and endpoint key, including empty options and limits tables."""
    document = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    assert list(document) == [
        "static",
        "listeners",
        "http",
        "memory",
        "process",
        "proxy",
        "metrics",
        "limits",
        "endpoints",
    ]
    assert document["proxy"] == {"trusted_networks": []}
    assert document["static"] == []
    assert list(document["listeners"][0]) == ["endpoint"]
    assert list(document["http"]) == ["demo_page"]
    assert document["memory"] == {
        "allocator_cache_bytes": DEFAULT_CACHE_BYTES,
        "release_after_closed_connections": DEFAULT_RELEASE_AFTER_CLOSED,
    }
    assert document["process"] == dataclasses.asdict(ProcessConfig())
    metrics = dataclasses.asdict(MetricsConfig())
    assert document["metrics"] == {
        key: list(value) if isinstance(value, tuple) else value for key, value in metrics.items() if value is not None
    }
    assert "# listen = " in SAMPLE.read_text(encoding="utf-8")  # the one key without a default value
    endpoint = document["endpoints"][0]
    assert set(endpoint) == {
        "path",
        "handler",
        "subprotocols",
        "allowed_origins",
        "options",
        "limits",
        "deflate",
        "auth",
    }
    assert endpoint["options"] == {} and endpoint["limits"] == {}
    assert endpoint["auth"] == {"type": "none", "close_on_expiry": False}
    assert set(endpoint["deflate"]) == {f.name for f in dataclasses.fields(DeflateSettings)}


def test_deflate_table_overrides_only_what_it_names() -> None:
    """[endpoints.deflate] changes the named settings and keeps the frugal defaults for the rest."""
    config = parse_config(ECHO + "[endpoints.deflate]\nserver_max_window_bits = 15\nenabled = false\n", SOURCE)
    assert config.endpoints[0].deflate == DeflateSettings(enabled=False, server_max_window_bits=15)
    assert default_config().endpoints[0].deflate == DeflateSettings()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("server_max_window_bits = 8", "an integer from 9 to 15"),
        ("compression_level = 10", "an integer from 0 to 9"),
        ("memory_level = 0", "an integer from 1 to 9"),
        ("enabled = 1", "true or false"),
        ("min_size_bytes = -1", "an integer from 0 to"),
    ],
)
def test_bad_deflate_setting_is_reported(line: str, expected: str) -> None:
    """A deflate setting out of range or of the wrong type names its key and what was expected."""
    name = line.split(" =")[0]
    assert_reported(config_error(ECHO + f"[endpoints.deflate]\n{line}\n"), f"endpoints[0].deflate.{name}", expected)


def test_sample_file_comments_each_limit_with_its_help() -> None:
    """Each limit's help text from Limits appears as a comment in the sample, so the two stay in sync."""
    text = SAMPLE.read_text(encoding="utf-8").lower()
    for name, help_text in limit_help().items():
        assert f"# {help_text.lower()}" in text, name


@pytest.mark.parametrize(
    ("paths", "owner"),
    [
        (("/a", "/a/b"), "endpoints[0].path"),
        (("/a/b", "/a"), "endpoints[0].path"),
        (("/healthz/ws",), "the health check"),
        (("/static/ws",), "the demo page's script"),
    ],
)
def test_endpoint_paths_may_not_nest(paths: tuple[str, ...], owner: str) -> None:
    """An endpoint inside or above another path would hide it, so the config refuses it."""
    text = "".join(f'[[endpoints]]\npath = "{path}"\nhandler = "echo"\n' for path in paths)
    key = f"endpoints[{len(paths) - 1}].path"
    assert_reported(config_error(text), key, f"a path not equal to, inside or above the one used by {owner}")


def test_sibling_paths_with_a_common_prefix_are_fine() -> None:
    """/chat and /chatroom share letters, not a path segment: both are allowed."""
    text = '[[endpoints]]\npath = "/chat"\nhandler = "echo"\n[[endpoints]]\npath = "/chatroom"\nhandler = "echo"\n'
    assert [e.path for e in parse_config(text, SOURCE).endpoints] == ["/chat", "/chatroom"]


# TLS listeners

TLS_LISTENER = '[[listeners]]\nendpoint = "tcp:8443"\ntls = true\ncertificate = "/etc/ws/chain.pem"\nprivate_key = "/etc/ws/key.pem"\n'


def test_tls_listener_is_parsed_with_its_defaults() -> None:
    """tls = true with a certificate and key gives TLS 1.2 minimum, no client certificates, 14-day warnings."""
    from wsdaemon.config import TLSConfig

    (listener,) = parse_config(TLS_LISTENER, SOURCE).listeners
    assert listener == ListenerConfig("tcp:8443", TLSConfig("/etc/ws/chain.pem", "/etc/ws/key.pem"))
    assert (listener.tls.min_tls_version, listener.tls.client_certs, listener.tls.expiry_warning_days) == (
        "1.2",
        "none",
        14,
    )


def test_plain_and_tls_listeners_side_by_side() -> None:
    """A plain and a TLS listener can be declared together; only the TLS one has tls settings."""
    config = parse_config('[[listeners]]\nendpoint = "tcp:8080"\n' + TLS_LISTENER, SOURCE)
    assert [(listener.endpoint, listener.tls is not None) for listener in config.listeners] == [
        ("tcp:8080", False),
        ("tcp:8443", True),
    ]


def test_sni_entries_and_mutual_tls_are_parsed() -> None:
    """[[listeners.sni]] tables and client_ca/client_certs become SNIConfig entries and the mTLS policy."""
    from wsdaemon.config import SNIConfig

    text = TLS_LISTENER + 'client_ca = "/etc/ws/ca.pem"\nclient_certs = "required"\n'
    text += '[[listeners.sni]]\nserver_name = "*.Example.COM."\ncertificate = "/c.pem"\nprivate_key = "/k.pem"\n'
    (listener,) = parse_config(text, SOURCE).listeners
    assert listener.tls.sni == (SNIConfig("*.example.com", "/c.pem", "/k.pem"),)
    assert (listener.tls.client_ca, listener.tls.client_certs) == ("/etc/ws/ca.pem", "required")


def test_tls_listener_needs_certificate_and_key() -> None:
    """tls = true without certificate and private_key reports both as missing."""
    error = config_error('[[listeners]]\nendpoint = "tcp:8443"\ntls = true\n')
    assert_reported(error, "listeners[0].certificate", "a PEM certificate chain file", "missing")
    assert_reported(error, "listeners[0].private_key", "a PEM private key file", "missing")


def test_tls_keys_without_tls_true_are_reported() -> None:
    """A certificate on a listener without tls = true is a mistake, not silently plain TCP."""
    error = config_error('[[listeners]]\nendpoint = "tcp:8443"\ncertificate = "/c.pem"\n')
    assert_reported(error, "listeners[0].certificate", "tls = true in the same [[listeners]] table")


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ('client_certs = "maybe"\n', "client_certs", 'one of "none", "optional", "required"'),
        ('client_certs = "required"\n', "client_certs", "a client_ca file with"),
        ('client_ca = "/ca.pem"\n', "client_certs", "a client_ca file with"),
        ('min_tls_version = "1.0"\n', "min_tls_version", 'one of "1.2", "1.3"'),
        ('ciphers = ""\n', "ciphers", "an OpenSSL cipher list"),
        ("expiry_warning_days = -1\n", "expiry_warning_days", "an integer from 0 to 3650"),
        ("tls = 1\n", "tls", "true or false"),
        ('sni = "x"\n', "sni", "an array of tables ([[listeners.sni]])"),
    ],
)
def test_bad_tls_settings_are_reported(extra: str, key: str, expected: str) -> None:
    """Each TLS setting is checked, naming the key and what it accepts."""
    text = TLS_LISTENER.replace("tls = true\n", "") + ("tls = true\n" if key != "tls" else "") + extra
    assert_reported(config_error(text), f"listeners[0].{key}", expected)


@pytest.mark.parametrize("name", ["", "exa mple.com", "*.*.example.com", "a.*.example.com", "-bad.example.com"])
def test_bad_sni_server_name_is_reported(name: str) -> None:
    """An SNI server_name must be a DNS name, optionally with one leading "*." label."""
    text = TLS_LISTENER + f'[[listeners.sni]]\nserver_name = "{name}"\ncertificate = "/c.pem"\nprivate_key = "/k.pem"\n'
    assert_reported(config_error(text), "listeners[0].sni[0].server_name", "a DNS name")


def test_duplicate_sni_server_name_is_reported() -> None:
    """The same server name twice on one listener is reported (which certificate would win?)."""
    entry = '[[listeners.sni]]\nserver_name = "ws.example.com"\ncertificate = "/c.pem"\nprivate_key = "/k.pem"\n'
    assert_reported(
        config_error(TLS_LISTENER + entry + entry),
        "listeners[0].sni[1].server_name",
        "a server name not already listed",
    )


# Static file mounts ([[static]])


def static_toml(path: str, directory: str) -> str:
    return f'[[static]]\npath = "{path}"\ndirectory = "{directory}"\n'


def test_static_mounts_default_to_none() -> None:
    """Without [[static]] no directory is served."""
    assert default_config().static == ()
    assert parse_config("static = []\n", SOURCE).static == ()


def test_static_mount_is_parsed_with_its_trailing_slash_dropped(tmp_path: Path) -> None:
    """A [[static]] table gives a StaticMount; "/files/" and "/files" are the same mount."""
    config = parse_config(static_toml("/files/", str(tmp_path)) + static_toml("/docs/api", str(tmp_path)), SOURCE)
    assert config.static == (StaticMount("/files", str(tmp_path)), StaticMount("/docs/api", str(tmp_path)))


def test_static_mount_at_root_needs_the_demo_page_off(tmp_path: Path) -> None:
    """ "/" is the demo page's unless [http] demo_page = false."""
    assert_reported(
        config_error(static_toml("/", str(tmp_path))), "static[0].path", "a path not already used by the demo page"
    )
    config = parse_config("[http]\ndemo_page = false\n" + static_toml("/", str(tmp_path)), SOURCE)
    assert config.static == (StaticMount("/", str(tmp_path)),)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/echo", "a path not already used by an endpoint"),
        ("/healthz", "a path not already used by the health check"),
        ("/echo/files", "a path outside /echo (an endpoint)"),
        ("/healthz/x", "a path outside /healthz (the health check)"),
        ("files", 'a URL path such as "/files"'),
        ("/a//b", 'a URL path such as "/files"'),
        ("/a/../b", 'a URL path such as "/files"'),
        ("/a?b", 'a URL path such as "/files"'),
    ],
)
def test_static_path_must_be_free_and_plain(tmp_path: Path, path: str, expected: str) -> None:
    """A mount path may not take an endpoint's or /healthz's path, nor lie under one, nor be malformed."""
    assert_reported(config_error(ECHO + static_toml(path, str(tmp_path))), "static[0].path", expected)


def test_static_paths_must_be_distinct(tmp_path: Path) -> None:
    """Two mounts at the same path are refused, naming the first."""
    error = config_error(static_toml("/files", str(tmp_path)) + static_toml("/files/", str(tmp_path)))
    assert_reported(error, "static[1].path", "a path not already used by static[0].path")


def test_static_mount_may_hold_an_endpoint_below_it(tmp_path: Path) -> None:
    """An endpoint under a mounted path (/app/ws under /app) is fine: the endpoint answers at its own path."""
    config = parse_config(
        '[[endpoints]]\npath = "/app/ws"\nhandler = "echo"\n' + static_toml("/app", str(tmp_path)), SOURCE
    )
    assert config.static == (StaticMount("/app", str(tmp_path)),)


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        ("relative/dir", "the absolute path of a directory to serve"),
        ("/no/such/directory", "an existing directory"),
    ],
)
def test_static_directory_must_be_an_existing_absolute_directory(directory: str, expected: str) -> None:
    """The directory is checked at startup: absolute, existing, a directory."""
    assert_reported(config_error(static_toml("/files", directory)), "static[0].directory", expected)


def test_static_problems_are_all_reported_with_the_rest(tmp_path: Path) -> None:
    """Missing keys, unknown keys, wrong shapes and other sections' problems come in one report."""
    text = '[limits]\nmax_message_bytes = "big"\n[[static]]\ncolour = "red"\n[[static]]\npath = 3\ndirectory = 4\n'
    error = config_error(text)
    keys = [problem.key for problem in error.problems]
    assert keys == [
        "limits.max_message_bytes",
        "static[0].colour",
        "static[0].path",
        "static[0].directory",
        "static[1].path",
        "static[1].directory",
    ]
    assert_reported(config_error("static = 3\n"), "static", "an array of tables ([[static]])")


# [process]: workers


def test_one_worker_by_default() -> None:
    """Without a [process] table the daemon is one process (workers = 1)."""
    assert default_config().process == ProcessConfig(workers=1)
    assert worker_count(parse_config("", SOURCE).process) == 1


@pytest.mark.parametrize(("value", "count"), [("4", 4), ('"auto"', 3), ("1024", 1024)])
def test_workers_is_a_count_or_auto(value: str, count: int) -> None:
    """workers = N runs N workers; "auto" one per CPU this process may run on (here 3)."""
    process = parse_config(f"[process]\nworkers = {value}\n", SOURCE).process
    assert worker_count(process, cpus=lambda: 3) == count


def test_auto_workers_stay_within_the_bound() -> None:
    """ "auto" on a huge host still runs at most 1024 workers, and at least one."""
    process = ProcessConfig(workers="auto")
    assert worker_count(process, cpus=lambda: 5000) == 1024
    assert worker_count(process, cpus=lambda: 0) == 1


@pytest.mark.parametrize("value", ["0", "-1", "1025", '"four"', "2.0", "true", '"AUTO"'])
def test_bad_workers_value_is_reported(value: str) -> None:
    """A workers value that is not 1 to 1024 or "auto" is reported with the expected form."""
    error = config_error(f"[process]\nworkers = {value}\n")
    assert_reported(error, "process.workers", 'an integer from 1 to 1024, or "auto" (one per CPU)')


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("heartbeat_timeout_seconds = 0.1", "process.heartbeat_timeout_seconds"),
        ("start_timeout_seconds = 0.5", "process.start_timeout_seconds"),
        ('restart_delay_max_seconds = "30"', "process.restart_delay_max_seconds"),
        ("stop_grace_seconds = -1", "process.stop_grace_seconds"),
    ],
)
def test_bad_supervision_time_is_reported(line: str, key: str) -> None:
    """The supervision times are numbers of seconds within their ranges."""
    assert_reported(config_error(f"[process]\n{line}\n"), key, "a number of seconds from")


def test_supervision_times_are_read() -> None:
    """start_timeout_seconds, heartbeat_timeout_seconds, restart_delay_max_seconds and stop_grace_seconds take effect."""
    text = "[process]\nworkers = 2\nstart_timeout_seconds = 60\nheartbeat_timeout_seconds = 2\nrestart_delay_max_seconds = 4.5\nstop_grace_seconds = 0\n"
    expected = ProcessConfig(
        2,
        start_timeout_seconds=60.0,
        heartbeat_timeout_seconds=2.0,
        restart_delay_max_seconds=4.5,
        stop_grace_seconds=0.0,
    )
    assert parse_config(text, SOURCE).process == expected


def test_unknown_process_key_is_reported_with_a_suggestion() -> None:
    """A typo in [process] names the key and suggests the right one."""
    assert_reported(config_error("[process]\nworker = 2\n"), "process.worker", "one of: workers", "an unknown key")


@pytest.mark.parametrize("workers", ["2", '"auto"'])
def test_broadcast_with_several_workers_starts(workers: str) -> None:
    """A broadcast endpoint with workers > 1 (or "auto") is accepted: the main process relays its channels."""
    text = f'[process]\nworkers = {workers}\n[[endpoints]]\npath = "/chat"\nhandler = "broadcast"\n'
    assert parse_config(text, SOURCE).endpoints[0].handler == "broadcast"


def test_broadcast_with_one_worker_is_fine() -> None:
    """workers = 1 serves broadcast as before."""
    text = '[process]\nworkers = 1\n[[endpoints]]\npath = "/chat"\nhandler = "broadcast"\n'
    assert parse_config(text, SOURCE).endpoints[0].handler == "broadcast"


def test_listener_the_workers_cannot_share_is_refused() -> None:
    """With workers > 1 an ssl: endpoint is refused: the main process can only hand over a plain socket."""
    text = '[process]\nworkers = 2\n[[listeners]]\nendpoint = "ssl:8443:privateKey=k.pem"\n'
    assert_reported(
        config_error(text), "listeners[0].endpoint", "a tcp:, tcp6: or systemd: (INET or INET6) endpoint while"
    )


def test_listen_option_the_workers_cannot_share_names_the_option() -> None:
    """An unshareable --listen value is reported as --listen[i]."""
    error = config_error("[process]\nworkers = 2\n", ("tcp:8080", "ssl:8443"))
    assert_reported(error, "--listen[1]", "for TLS use tls = true on a tcp: listener", "'ssl:8443'")


def test_shareable_listeners_pass_with_workers() -> None:
    """tcp:, tcp6: and systemd: TCP listeners are fine with several workers."""
    listen = ("tcp:8080", "tcp6:8081", "systemd:domain=INET:index=0", "systemd:domain=INET6:name=https")
    assert len(parse_config("[process]\nworkers = 2\n", SOURCE, listen).listeners) == 4


@pytest.mark.parametrize("endpoint", ["unix:/run/ws.sock", "systemd:domain=UNIX:name=ws"])
def test_unix_socket_listener_needs_one_worker(endpoint: str) -> None:
    """A UNIX socket cannot be shared by workers (each would chmod and delete its file): refused, saying so."""
    error = config_error("[process]\nworkers = 2\n", (endpoint,))
    assert_reported(error, "--listen[0]", "unix: sockets need workers = 1", repr(endpoint))


# Message rate (per endpoint)


def test_message_rate_is_off_unless_set() -> None:
    """No message_rate key: no limit; message_rate alone gets a burst of one second's worth."""
    assert default_config().endpoints[0].message_rate is None
    config = parse_config(ECHO + "message_rate = 2.5\n", SOURCE)
    assert config.endpoints[0].message_rate == (2.5, 3)
    config = parse_config(ECHO + "message_rate = 10\nmessage_burst = 40\n", SOURCE)
    assert config.endpoints[0].message_rate == (10.0, 40)


@pytest.mark.parametrize(
    ("lines", "key", "expected"),
    [
        ("message_rate = 0\n", "endpoints[0].message_rate", "a number of messages per second from 0.01"),
        ("message_rate = true\n", "endpoints[0].message_rate", "a number of messages per second"),
        ('message_rate = "fast"\n', "endpoints[0].message_rate", "a number of messages per second"),
        ("message_rate = 5\nmessage_burst = 0\n", "endpoints[0].message_burst", "an integer number of messages from 1"),
        ("message_rate = 5\nmessage_burst = 2.5\n", "endpoints[0].message_burst", "an integer number of messages"),
        ("message_burst = 5\n", "endpoints[0].message_burst", "message_rate in the same [[endpoints]] table"),
    ],
)
def test_bad_message_rate_is_reported(lines: str, key: str, expected: str) -> None:
    """A message rate or burst out of range, of the wrong type or alone names its key and what was expected."""
    assert_reported(config_error(ECHO + lines), key, expected)
