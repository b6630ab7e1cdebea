"""Static mounts (wsdaemon.web.mounts and their place in the site tree), in memory.

File bodies are sent by a pull producer that needs a running reactor, so
these tests use HEAD for files that exist and GET for everything answered
without a body producer (404s, redirects, other resources). Bodies over a
real socket are in tests/integration/test_static.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.stack import Stack, http_request, upgrade_request
from wsdaemon.web.mounts import ConfinedFile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/www (served) with a file, a sub-directory without index, and symlinks in and out; tmp/secret.txt outside."""
    (tmp_path / "secret.txt").write_text("secret")
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "a.txt").write_text("a")
    (www / "sub" / "b.txt").write_text("b")
    os.symlink(www / "a.txt", www / "in.txt")
    os.symlink(tmp_path / "secret.txt", www / "out.txt")
    os.symlink(tmp_path, www / "up")
    return tmp_path


def stack(tree: Path, path: str = "/files", demo_page: bool = True) -> Stack:
    toml = f'[http]\ndemo_page = {"true" if demo_page else "false"}\n[[static]]\npath = "{path}"\ndirectory = "{tree / "www"}"\n'
    return Stack(toml)


def head(stack: Stack, path: str) -> int:
    return stack.connect().request(http_request(path, method="HEAD")).status


def get(stack: Stack, path: str) -> int:
    return stack.connect().request(http_request(path)).status


def test_file_under_the_mount_is_found_with_its_type(tree):
    """HEAD of a file under the mount answers 200 with its content type and nosniff."""
    response = stack(tree).connect().request(http_request("/files/a.txt", method="HEAD"))
    assert response.status == 200
    assert response.header("content-type").startswith("text/plain")
    assert response.header("x-content-type-options") == "nosniff"
    assert response.header("server") is None


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/..%2fsecret.txt",
        "/files/out.txt",
        "/files/up/secret.txt",
        "/files/%00",
        "/files/nope",
    ],
)
def test_anything_outside_the_mount_is_404(tree, path):
    """Dot-dot (plain or encoded), encoded slashes, NUL and symlinks out of the directory are all 404."""
    assert get(stack(tree), path) == 404


def test_symlink_inside_the_mount_is_followed(tree):
    """A symlink to a file inside the mount is served."""
    assert head(stack(tree), "/files/in.txt") == 200


def test_directory_without_index_is_not_listed(tree):
    """A directory with no index.html is 404 rather than a listing of its files."""
    response = stack(tree).connect().request(http_request("/files/sub/"))
    assert response.status == 404 and b"b.txt" not in response.body


def test_mount_path_without_slash_redirects_to_the_directory(tree):
    """/files answers with a redirect to /files/."""
    response = stack(tree).connect().request(http_request("/files"))
    assert response.status in (301, 302) and response.header("location").endswith("/files/")


def test_mount_at_root_keeps_health_and_endpoints(tree):
    """A mount at "/" (demo page off) serves files while /healthz and WebSocket endpoints keep their paths."""
    site = stack(tree, "/", demo_page=False)
    assert head(site, "/a.txt") == 200
    assert site.connect().request(http_request("/healthz")).body == b"ok\n"
    assert site.connect().request(upgrade_request("/echo")).status == 101
    assert get(site, "/../secret.txt") == 404


def test_mount_beside_the_demo_page(tree):
    """With the demo page on, a mount elsewhere leaves / and /static/demo.js to the demo."""
    site = stack(tree)
    assert site.connect().request(http_request("/")).status == 200
    assert site.connect().request(http_request("/static/demo.js")).status == 200


def test_confined_file_knows_what_is_inside(tree):
    """inside() resolves symlinks: the root and what lies under it are inside, anything else is not."""
    confined = ConfinedFile(str(tree / "www"))
    assert confined.inside(str(tree / "www"))
    assert confined.inside(str(tree / "www" / "in.txt"))
    assert not confined.inside(str(tree / "www" / "out.txt"))
    assert not confined.inside(str(tree / "www-other"))
    assert not confined.inside(str(tree / "www" / "up"))


def test_site_without_mounts_does_not_import_twisted_web_static():
    """twisted.web.static (which warns on import) is loaded only when a mount is configured."""
    code = (
        "import sys\n"
        "from twisted.internet.testing import MemoryReactorClock\n"
        "from wsdaemon.config import default_config\n"
        "from wsdaemon.web.site import build_root\n"
        "from wsdaemon.admission import Admission\n"
        "build_root(default_config(), {'/echo': object(), '/chat': object()}, MemoryReactorClock(), admission=Admission())\n"
        "print('twisted.web.static' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
