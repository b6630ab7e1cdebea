"""The demo page's pure logic (backoff, envelope order and dedupe, reconnect states) under Node's test runner.

``wsdaemon/web/static/demo.js`` exports its logic when loaded as a module;
``tests/integration/node/demo.test.js`` drives it with a fake WebSocket and a
fake clock. The browser tests (test_browser.py, test_chat_browser.py) check
the same page end to end.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"


def test_demo_logic_passes_node_test():
    """Every case of node/demo.test.js passes (node --test exits 0 and reports no failure)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (Debian: apt-get install nodejs npm)")
    done = subprocess.run([node, "--test", "demo.test.js"], cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout, done.stdout
