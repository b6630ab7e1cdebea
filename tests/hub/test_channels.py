"""Channel names (wsdaemon.hub.channels): what the publish API and the config accept, and why not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsdaemon.hub import MAX_CHANNEL_BYTES, InvalidChannel, channel_problem, check_channel, join_channel


@pytest.mark.parametrize("name", ["/", "/chat", "/chat/room1", "/chat/café", "/a-b_c.d/~x/%41", "/x/" + "y" * 500])
def test_valid_names(name: str) -> None:
    """URL paths a member could connect to are channel names, Unicode included."""
    assert channel_problem(name) is None
    assert check_channel(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (None, "must be a string, got NoneType"),
        (b"/chat", "must be a string, got bytes"),
        (42, "must be a string, got int"),
        ("", "must be a URL path starting with '/'"),
        ("chat", "must be a URL path starting with '/'"),
        ("/chat/", "empty, '.' or '..' segment"),
        ("/chat//room", "empty, '.' or '..' segment"),
        ("//", "empty, '.' or '..' segment"),
        ("/chat/./room", "empty, '.' or '..' segment"),
        ("/chat/..", "empty, '.' or '..' segment"),
        ("/chat?x=1", "must not contain '?'"),
        ("/chat#top", "must not contain '#'"),
        ("/chat\nroom", "must not contain '\\n' (U+000A)"),
        ("/chat\x00", "U+0000"),
        ("/chat\x7f", "U+007F"),
        ("/chat\x85", "U+0085"),
        ("/chat\u2028", "U+2028"),
        ("/chat\ud800", "no lone surrogates"),
        ("/" + "x" * MAX_CHANNEL_BYTES, f"at most {MAX_CHANNEL_BYTES} bytes of UTF-8, got {MAX_CHANNEL_BYTES + 1}"),
        ("/" + "é" * 256, "at most 512 bytes of UTF-8, got 513"),
    ],
)
def test_invalid_names_say_what_is_wrong(name: object, problem: str) -> None:
    """Each broken rule is named, for the publish API's 400 and the config's error."""
    found = channel_problem(name)
    assert found is not None and problem in found
    with pytest.raises(InvalidChannel, match="invalid channel: ") as caught:
        check_channel(name)
    assert caught.value.status == 400
    assert problem in str(caught.value)


@given(st.from_type(object) | st.text() | st.binary())
def test_any_value_gets_an_answer(value: object) -> None:
    """Any value is either a valid name or an InvalidChannel, never another exception."""
    problem = channel_problem(value)
    if problem is None:
        assert check_channel(value) == value
    else:
        with pytest.raises(InvalidChannel):
            check_channel(value)


@pytest.mark.parametrize(
    ("endpoint", "rest", "channel"),
    [
        ("/chat", [], "/chat"),
        ("/chat", [b"room1"], "/chat/room1"),
        ("/chat/", [b"room1"], "/chat/room1"),
        ("/chat", [b"a", b"b"], "/chat/a/b"),
        ("/chat", [b"caf\xc3\xa9"], "/chat/café"),
        ("/", [], "/"),
        ("/", [b"room"], "/room"),
    ],
)
def test_join_channel(endpoint: str, rest: list[bytes], channel: str) -> None:
    """A channel_from_path member's channel is the endpoint path plus the segments after it."""
    assert join_channel(endpoint, rest) == channel


@pytest.mark.parametrize("rest", [[b""], [b"room", b""], [b"\xff"], [b"x" * 600], [b".."], [b"a?b"]])
def test_join_channel_refuses_bad_paths(rest: list[bytes]) -> None:
    """Empty segments, non-UTF-8, '..', '?' and overlong paths name no channel."""
    with pytest.raises(InvalidChannel):
        join_channel("/chat", rest)
