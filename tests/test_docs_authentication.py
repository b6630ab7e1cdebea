"""docs/authentication.md shows the tested example as it is: each excerpt is in the file it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "authentication.md"
EXCERPT = re.compile(r"```python\n# (examples/\S+)\n(.*?)```", re.S)


def excerpts() -> list[tuple[str, str]]:
    """(file, code) for every python block of the guide that opens with the file it comes from."""
    return EXCERPT.findall(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_quotes_the_example():
    """The guide quotes the plugin module and the authenticator itself (not made-up code)."""
    files = {name for name, _ in excerpts()}
    assert {
        "examples/session-auth/src/wsdaemon_plugins/wsdaemon_session_auth.py",
        "examples/session-auth/src/wsdaemon_session_auth/__init__.py",
    } <= files


@pytest.mark.parametrize(("name", "code"), excerpts(), ids=lambda value: value[:60])
def test_each_excerpt_is_in_its_file(name, code):
    """An excerpt of the example that the guide shows is, word for word, in the example's file."""
    assert code in (ROOT / name).read_text(encoding="utf-8")
