"""The shout handler, tested with wsdaemon.testing: a real daemon stack in memory, no sockets."""

from __future__ import annotations

import pytest
from wsdaemon_shout import ShoutFactory, build_factory

from wsdaemon.interfaces import HandlerOptionsError
from wsdaemon.testing import connect


def test_text_is_answered_in_capitals_with_the_suffix():
    """Each text message comes back upper-cased, followed by the suffix."""
    client = connect(ShoutFactory("!!"), "/shout")
    client.send_text("hello")
    client.send_text("straße")
    assert client.received() == ["HELLO!!", "STRASSE!!"]


def test_binary_is_refused_with_1003():
    """A binary message closes the connection with 1003 (unsupported data)."""
    client = connect(ShoutFactory(), "/shout")
    client.send_bytes(b"\x00")
    assert client.received() == []
    assert client.close_code == 1003


def test_client_close_is_echoed():
    """A normal close from the client completes with 1000."""
    client = connect(ShoutFactory(), "/shout")
    client.close()
    assert client.close_code == 1000 and client.closed


def test_default_suffix_is_one_exclamation_mark():
    """Without options the suffix is "!"."""
    client = connect(build_factory({}, "/shout"), "/shout")
    client.send_text("hi")
    assert client.received() == ["HI!"]


@pytest.mark.parametrize("suffix", [3, "x" * 17])
def test_bad_suffix_is_a_config_error(suffix):
    """A suffix that is not a short string is refused with HandlerOptionsError naming it."""
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory({"suffix": suffix}, "/shout")
    assert raised.value.option == "suffix"
