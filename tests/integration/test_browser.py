"""The demo page in a real browser: Debian's headless Chromium, driven by Playwright.

Playwright never downloads a browser here; it drives /usr/bin/chromium (CI
installs Debian's ``chromium`` package).  A missing browser is a failure, not
a skip, so a broken CI image cannot pass silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, and
# this machine's closed network refuses each attempt.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
#: A page retries after up to 1, 2, 4, 8 ... s: a daemon back within a few seconds is found within this.
RECONNECT_TIMEOUT_MS = 40_000
PHONE = {"width": 360, "height": 640}
DESKTOP = {"width": 1024, "height": 700}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium from /usr/bin/chromium, shared by the module."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator:
    """Open a page at a viewport size (and browser-context options); it records console errors in ``page.errors``."""
    contexts = []

    def open_(url: str, viewport: dict[str, int] = DESKTOP, **context_options: object) -> Page:
        context = browser.new_context(viewport=viewport, **context_options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))  # type: ignore[attr-defined]
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()


def wait_for_status(page: Page, text: str, panel: str = "echo", timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until a panel's state line starts with ``text``; on timeout, say what it reads."""
    selector = f"#{panel}-status"
    try:
        # Locator waits need no eval in the page, so the page's strict CSP cannot get in the way.
        page.locator(selector, has_text=re.compile("^" + re.escape(text))).wait_for(timeout=timeout_ms)
    except PlaywrightTimeoutError:
        pytest.fail(
            f"{panel} state is {page.text_content(selector)!r}, not {text!r}, after {timeout_ms} ms", pytrace=False
        )


def send_and_wait_for_echo(page: Page, message: str, count: int) -> None:
    """Type a message, press Send, wait for the ``count``-th echo in the log."""
    page.fill("#echo-message", message)
    page.click("#echo-send")
    page.locator("#echo-log .received").nth(count - 1).wait_for()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_demo_page_echoes_a_typed_message(daemon, open_page, tmp_path, viewport):
    """In a browser, typing a message and pressing Send shows its echo and round-trip time in the log."""
    page = open_page(daemon.base_url + "/", viewport)
    wait_for_status(page, "open")
    message = "hello from Chromium ✓ <b>not markup</b>"
    send_and_wait_for_echo(page, message, 1)
    echo = page.locator("#echo-log .received").first
    assert echo.locator(".text").text_content() == message
    assert float(echo.get_attribute("data-rtt-ms")) >= 0
    assert echo.locator(".rtt").text_content().endswith(" ms")
    assert page.locator("#echo-log b").count() == 0, "echoed text was rendered as HTML"
    wait_for_status(page, "open", panel="chat")  # the built-in defaults serve the chat too

    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, f"the page scrolls sideways at {viewport}"
    screenshot = tmp_path / "demo.png"
    page.screenshot(path=str(screenshot), full_page=True)
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert page.errors == []


def test_demo_page_keeps_retrying_a_failed_connection(daemon, open_page):
    """A page pointed at an endpoint that does not exist says "reconnecting in N s (code 1006)" and keeps trying."""
    page = open_page(daemon.base_url + "/?endpoint=/no-such-endpoint")
    page.locator('#echo-status[data-state="reconnecting"]').wait_for()
    assert re.match(r"reconnecting in \d+ s \(code 1006\)", page.text_content("#echo-status"))
    assert page.is_disabled("#echo-send")
    assert page.text_content("#echo-toggle") == "Disconnect"


def test_demo_page_disconnect_is_final_until_connect(daemon, open_page):
    """Disconnect closes with 1000 and nothing reconnects; Connect opens again."""
    page = open_page(daemon.base_url + "/")
    wait_for_status(page, "open")
    page.click("#echo-toggle")
    wait_for_status(page, "closed (code 1000: closed by the user)")
    assert page.text_content("#echo-toggle") == "Connect"
    assert page.is_disabled("#echo-send")
    page.click("#echo-toggle")
    wait_for_status(page, "open")
    send_and_wait_for_echo(page, "after connect", 1)
    assert page.errors == []


def test_demo_page_reconnects_by_itself_after_a_daemon_restart(daemon_factory, open_page):
    """Stopping the daemon shows "reconnecting in N s" and the 1001 close; after a restart the page is open again by itself."""
    first = daemon_factory()
    page = open_page(first.base_url + "/")
    wait_for_status(page, "open")
    first.stop()
    wait_for_status(page, "reconnecting in ")
    # The state line moves on to the failed retries (1006) while the daemon is down; the log keeps the 1001.
    page.locator("#echo-log .info", has_text="closed (code 1001").wait_for()
    assert page.is_disabled("#echo-send")

    daemon_factory(port=first.port)
    wait_for_status(page, "open", timeout_ms=RECONNECT_TIMEOUT_MS)
    send_and_wait_for_echo(page, "after reconnect", 1)
    assert page.locator("#echo-log .received .text").last.text_content() == "after reconnect"
