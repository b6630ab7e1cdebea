"""Channel paths a claim allows: exact entries and the "/prefix/*" form, nothing else."""

from __future__ import annotations

import pytest

from wsdaemon.auth.channels import channel_allowed, claimed_channels


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/chat/a", True),
        ("/chat/b", False),
        ("/news/today", True),
        ("/news/today/sport", True),
        ("/news", False),
        ("/newsroom", False),
        ("/news/", False),
        ("/news/../chat/b", False),
        ("/news/./x", False),
        ("/news//x", False),
        ("chat/a", False),
    ],
)
def test_exact_and_prefix_entries(path, allowed):
    """ "/chat/a" allows only itself; "/news/*" allows paths under /news/ but not /news or /newsroom."""
    assert channel_allowed(path, ["/chat/a", "/news/*"]) is allowed


def test_claim_values():
    """A list of strings or one string is the entries; a missing or odd claim allows nothing."""
    assert claimed_channels({"channels": ["/a", "/b/*"]}, "channels") == ("/a", "/b/*")
    assert claimed_channels({"channels": "/a"}, "channels") == ("/a",)
    for claims in ({}, {"channels": 5}, {"channels": ["/a", 5]}, {"channels": {"/a": True}}):
        assert claimed_channels(claims, "channels") == ()
