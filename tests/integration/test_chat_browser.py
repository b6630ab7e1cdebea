"""The demo page's chat in real headless Chromium: two pages over ws:// and wss://, across a daemon restart.

Three ways to lose the link, each with messages published meanwhile:
* the pages' daemon restarts while another instance, on the same real
  redis-server, takes publishes: the history survives, the pages are
  ``recovered`` and show what they missed, once and in order;
* the daemon restarts without a shared broker: it can take no publishes while
  down and begins a new history (a new epoch), so the backend publishes right
  after the restart, racing the reconnects; either way each page says "not
  recovered" and then shows every message once, in order;
* the network is cut between the pages and a daemon that stays up (a relay,
  :class:`CuttableProxy`), and the user's own Disconnect/Connect.

The daemon runs on the built-in endpoints (``/echo`` and the ``/chat/`` channels
with JSON envelopes and history) with a plain and a TLS listener and the publish
API. Chromium is told to ignore certificate errors (the throwaway CA is not
installed in it); the page picks ``wss://`` because it was loaded over https.

Console errors fail the tests, with one exception: while the daemon is down,
Chromium itself logs each refused reconnect ("WebSocket connection to ...
failed"). Those lines are expected only in that window; any other error, or one
outside the window, fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.certs import ThrowawayCA
from tests.integration.support import LOOPBACK, CuttableProxy, free_port
from tests.integration.test_broker_redis import TOKEN, api
from tests.integration.test_browser import (  # noqa: F401  (the fixtures are used by name)
    PHONE,
    PNG_SIGNATURE,
    RECONNECT_TIMEOUT_MS,
    browser,
    open_page,
    wait_for_status,
)

ROOM = "/chat/lobby"
REFUSED_RECONNECT = re.compile(r"^WebSocket connection to 'wss?://[^']+/(echo|chat/lobby[^']*)' failed")


class Site:
    """Where the daemon serves the page: over http (ws://) or https (wss://)."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        self.ca = ThrowawayCA(workdir / "pki")
        self.cert = self.ca.issue("localhost", ("localhost",), ip_addresses=(LOOPBACK,), stem="server")
        self.http_port, self.tls_port = free_port(), free_port()
        token_file = workdir / "api-token"
        token_file.write_text(TOKEN + "\n")
        # Only listeners and the API: the endpoints are the built-in defaults, chat included.
        self.config = (
            f'[[listeners]]\nendpoint = "tcp:{self.http_port}:interface={LOOPBACK}"\n'
            f'[[listeners]]\nendpoint = "tcp:{self.tls_port}:interface={LOOPBACK}"\ntls = true\n'
            f'certificate = "{self.cert.cert_path}"\nprivate_key = "{self.cert.key_path}"\n'
            f'[api]\ntoken_file = "{token_file}"\n{extra}'
        )
        #: The same daemon without listeners of its own (given --listen), e.g. a second instance.
        self.instance_config = f'[api]\ntoken_file = "{token_file}"\n{extra}'

    def page_url(self, scheme: str) -> str:
        """The demo page, over http or https."""
        if scheme == "wss":
            return f"https://{LOOPBACK}:{self.tls_port}/"
        return f"http://{LOOPBACK}:{self.http_port}/"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """Certificates, ports and the config of the chat daemon."""
    return Site(tmp_path)


@pytest.fixture
def chat_page(open_page: Any) -> Iterator[Any]:  # noqa: F811  (the imported fixture)
    """Open the demo page as a named chatter; console errors are kept with the time window they fell in."""
    pages: list[Page] = []

    def open_chat(url: str, name: str, **options: Any) -> Page:
        page = open_page(url, ignore_https_errors=True, **options)
        page.down = False  # type: ignore[attr-defined]
        page.window_errors = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and page.window_errors.append((page.down, m.text)))  # type: ignore[attr-defined]
        wait_for_status(page, "open", panel="chat")
        page.fill("#chat-name", name)
        pages.append(page)
        return page

    yield open_chat
    for page in pages:
        unexpected = [text for down, text in page.window_errors if not (down and REFUSED_RECONNECT.match(text))]  # type: ignore[attr-defined]
        assert unexpected == [], f"console errors: {unexpected}"
        assert all(REFUSED_RECONNECT.match(e) for e in page.errors), page.errors  # type: ignore[attr-defined]


def say(page: Page, text: str) -> None:
    """Type a chat message and press Send."""
    page.fill("#chat-message", text)
    page.click("#chat-send")


def wait_for_messages(page: Page, count: int, timeout_ms: int = 10_000) -> None:
    """Until the page lists at least ``count`` chat messages."""
    page.locator("#chat-log .message").nth(count - 1).wait_for(timeout=timeout_ms)


def messages(page: Page) -> list[tuple[str, str]]:
    """(name, text) of every chat message the page lists, top to bottom."""
    names = page.locator("#chat-log .message .name").all_text_contents()
    texts = page.locator("#chat-log .message .text").all_text_contents()
    return list(zip(names, texts, strict=True))


def offsets(page: Page) -> list[int]:
    """The offsets of the listed messages (the page's dedupe key)."""
    return [
        int(o) for o in page.eval_on_selector_all("#chat-log .message", "items => items.map(i => i.dataset.offset)")
    ]


def publish(daemon: Any, text: str) -> None:
    """A backend's message to the room through the publish API."""
    status, answer = api(daemon, "POST", "/api/publish", {"channel": ROOM, "data": text})
    assert status == 200, answer


def wait_until_back(page: Page) -> None:
    """Both panels open again by themselves; from now on a console error is not expected."""
    for panel in ("chat", "echo"):
        wait_for_status(page, "open", panel=panel, timeout_ms=RECONNECT_TIMEOUT_MS)
    page.down = False  # type: ignore[attr-defined]


def assert_recovered_once_in_order(pages: tuple[Page, ...], expected: list[str]) -> None:
    """Each page lists exactly ``expected``, at offsets 1, 2, 3 ... of one history, and was never told of a gap."""
    for page in pages:
        wait_for_messages(page, len(expected))
        assert [text for _, text in messages(page)] == expected, "a message is missing, repeated or out of order"
        assert offsets(page) == list(range(1, len(expected) + 1))
        assert page.locator("#chat-log .missed").count() == 0


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_two_pages_chat_and_survive_a_daemon_restart(daemon_factory, site, chat_page, tmp_path, scheme):
    """Two pages see each other's messages; across a restart both reconnect by themselves and show everything once, in order."""
    daemon = daemon_factory(site.config, port=site.http_port, listen=False)
    ann = chat_page(site.page_url(scheme), "ann")
    bob = chat_page(site.page_url(scheme), "bob", viewport=PHONE)
    assert (
        ann.text_content("#chat-endpoint")
        == f"{scheme}://{LOOPBACK}:{site.http_port if scheme == 'ws' else site.tls_port}{ROOM}"
    )

    say(ann, "hello from ann")
    wait_for_messages(bob, 1)
    say(bob, "hi ann, bob here ✓")
    publish(daemon, "from the backend")
    expected = [("ann", "hello from ann"), ("bob", "hi ann, bob here ✓"), ("—", "from the backend")]
    for page in (ann, bob):
        wait_for_messages(page, 3)
        assert messages(page) == expected

    for page in (ann, bob):
        page.down = True  # type: ignore[attr-defined]
    daemon.stop()
    for page in (ann, bob):
        wait_for_status(page, "reconnecting in ", panel="chat")
        assert page.is_disabled("#chat-send")
    restarted = daemon_factory(site.config, port=site.http_port, listen=False)
    published = [f"published after the restart {n}" for n in range(1, 4)]
    for text in published:
        publish(restarted, text)
    expected += [("—", text) for text in published]
    for page in (ann, bob):
        wait_until_back(page)
        wait_for_messages(page, len(expected))
        # The restart began a new history (no shared broker): the page says so, then shows it.
        page.locator("#chat-log .missed", has_text="epoch_changed").wait_for()

    say(bob, "back again")
    expected.append(("bob", "back again"))
    for page in (ann, bob):
        wait_for_messages(page, len(expected))
        assert messages(page) == expected, "a message is missing, repeated or out of order"
        assert offsets(page)[3:] == [1, 2, 3, 4]  # the new history, each offset once

    for name, page in (("desktop", ann), ("phone", bob)):
        screenshot = tmp_path / f"chat-{scheme}-{name}.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
        print(f"screenshot: {screenshot}")
    assert bob.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the phone view scrolls sideways"


def test_a_page_that_reconnects_recovers_what_it_missed_without_duplicates(daemon_factory, site, chat_page):
    """Disconnect, messages published meanwhile, Connect: "nothing was missed", each message once, in order."""
    daemon = daemon_factory(site.config, port=site.http_port, listen=False)
    ann = chat_page(site.page_url("ws"), "ann")
    say(ann, "before")
    wait_for_messages(ann, 1)

    ann.click("#chat-toggle")
    wait_for_status(ann, "closed (code 1000: closed by the user)", panel="chat")
    for n in range(1, 4):
        publish(daemon, f"missed {n}")
    ann.click("#chat-toggle")
    wait_for_status(ann, "open", panel="chat")
    ann.locator("#chat-log .recovered").wait_for()
    wait_for_messages(ann, 4)
    say(ann, "after")
    assert_recovered_once_in_order((ann,), ["before", "missed 1", "missed 2", "missed 3", "after"])


@pytest.fixture
def proxy(site: Site) -> Iterator[CuttableProxy]:
    """A relay in front of the daemon's plain listener, to cut the network."""
    relay = CuttableProxy(site.http_port)
    yield relay
    relay.close()


def check_outage_recovered(
    pages: tuple[Page, Page], publisher: Any, down: Any, back: Any, missed: list[str], lost_code: int | None = None
) -> None:
    """One message, ``down()``, ``missed`` published through ``publisher``, ``back()``: recovered, each once, in order.

    With ``lost_code`` the state line must name that close code while reconnecting.
    """
    first, second = pages
    say(first, "before")
    for page in pages:
        wait_for_messages(page, 1)
        page.down = True  # type: ignore[attr-defined]
    down()
    for page in pages:
        wait_for_status(page, "reconnecting in ", panel="chat")
        if lost_code is not None:
            assert f"(code {lost_code})" in page.text_content("#chat-status")
    for text in missed:
        publish(publisher, text)
    back()
    for page in pages:
        wait_until_back(page)
        page.locator("#chat-log .recovered").wait_for()
    say(second, "after")
    assert_recovered_once_in_order(pages, ["before", *missed, "after"])


def test_pages_recover_what_was_published_while_the_network_was_down(daemon_factory, site, chat_page, proxy):
    """Links dropped without a close: both pages reconnect by themselves, recover, and show each message once, in order."""
    daemon = daemon_factory(site.config, port=site.http_port, listen=False)
    page_url = f"http://{LOOPBACK}:{proxy.port}/"
    pages = chat_page(page_url, "ann"), chat_page(page_url, "bob")
    missed = [f"missed {n}" for n in range(1, 6)]
    check_outage_recovered(pages, daemon, proxy.cut, proxy.restore, missed, lost_code=1006)


def test_pages_recover_across_a_daemon_restart_with_a_shared_broker(daemon_factory, tmp_path, chat_page, redis_server):
    """History in Redis: messages published on another instance while the pages' daemon is down are recovered, once, in order."""
    site = Site(tmp_path, f'[broker]\nurl = "{redis_server.url}"\nreconnect_initial_seconds = 0.1\n')
    daemon = daemon_factory(site.config, port=site.http_port, listen=False)
    other = daemon_factory(site.instance_config)
    pages = chat_page(site.page_url("ws"), "ann"), chat_page(site.page_url("wss"), "bob")
    missed = [f"published while the daemon was down {n}" for n in range(1, 4)]

    def restart() -> None:
        daemon_factory(site.config, port=site.http_port, listen=False)

    check_outage_recovered(pages, other, daemon.stop, restart, missed)
