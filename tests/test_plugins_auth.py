"""Authenticator discovery through twisted.plugin, and the lazy AuthenticatorPlugin descriptor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

import wsdaemon.plugins
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError, IAuthenticator, IAuthenticatorPlugin
from wsdaemon.plugins import AuthenticatorPlugin, DuplicateAuthenticator, discover_authenticators

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTEXT = HandlerContext(MemoryReactorClock(), MultiService())


def test_builtin_authenticators_are_found_as_plugins():
    """none, jwt and basic are discovered through twisted.plugin, like any third-party authenticator."""
    found = discover_authenticators()
    assert {name: found[name].module for name in ("none", "jwt", "basic")} == {
        "none": "wsdaemon.auth.none_auth",
        "jwt": "wsdaemon.auth.jwt_auth",
        "basic": "wsdaemon.auth.basic_auth",
    }
    for plugin in found.values():
        assert verifyObject(IAuthenticatorPlugin, plugin)


def test_built_authenticators_provide_the_interface(tmp_path):
    """What each built-in plugin builds provides IAuthenticator."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"k" * 32)
    users = tmp_path / "users"
    users.write_bytes(b"alice:$2b$04$" + b"a" * 53 + b"\n")
    found = discover_authenticators()
    options = {
        "none": {},
        "jwt": {"algorithms": ["HS256"], "secret_file": str(secret)},
        "basic": {"htpasswd_file": str(users)},
    }
    for name, given in options.items():
        assert verifyObject(IAuthenticator, found[name].buildAuthenticator(given, "/chat", CONTEXT))


def test_unknown_option_is_refused_before_importing_the_module():
    """An option the descriptor does not list is refused by name, and the module is never imported."""
    plugin = AuthenticatorPlugin("ghost", "no.such.module", "a ghost", {"realm": "string"})
    with pytest.raises(HandlerOptionsError) as raised:
        plugin.buildAuthenticator({"relm": "x"}, "/chat", CONTEXT)
    assert raised.value.option == "relm"
    assert raised.value.expected == "one of: realm (did you mean realm?)"


def test_duplicate_authenticator_names_are_refused(monkeypatch):
    """Two plugins claiming one authenticator name raise DuplicateAuthenticator naming both."""
    first = AuthenticatorPlugin("jwt", "wsdaemon.auth.jwt_auth", "the real one")
    second = AuthenticatorPlugin("jwt", "thirdparty.jwt", "an impostor")
    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", lambda interface, package=None: iter([first, second]))
    with pytest.raises(DuplicateAuthenticator) as raised:
        discover_authenticators()
    assert "authenticator name 'jwt'" in str(raised.value) and "thirdparty.jwt" in str(raised.value)


def test_the_plugin_module_imports_no_implementation():
    """Importing wsdaemon_plugins/wsdaemon_authenticators.py loads neither PyJWT, bcrypt nor the implementations."""
    code = (
        "import sys\n"
        "import wsdaemon_plugins.wsdaemon_authenticators\n"
        "heavy = ['jwt', 'bcrypt', 'cryptography', 'wsdaemon.auth.jwt_auth', 'wsdaemon.auth.basic_auth', 'twisted.internet.reactor']\n"
        "print(','.join(name for name in heavy if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
