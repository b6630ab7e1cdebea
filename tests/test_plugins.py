"""Handler discovery through twisted.plugin, and the lazy HandlerPlugin descriptor (wsdaemon.plugins)."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

import wsdaemon.plugins
from tests.broken_plugin import install_broken_plugin, plugin_import_report
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError, IHandlerPlugin, InvalidHandlerOptions
from wsdaemon.plugins import (
    BrokenPlugin,
    DuplicateHandler,
    HandlerPlugin,
    broken_plugin,
    build_handler_factory,
    describe_handlers,
    discover_handlers,
    is_plugin_import_report,
    takes_context,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_discover_handlers_finds_the_builtin_echo():
    """The built-in echo handler is found through twisted.plugin, by its name."""
    handlers = discover_handlers()
    assert "echo" in handlers
    assert handlers["echo"].name == "echo"


def test_discovered_handlers_provide_the_plugin_interfaces():
    """Every discovered handler provides IPlugin and IHandlerPlugin with name, description and options."""
    for plugin in discover_handlers().values():
        assert IPlugin.providedBy(plugin)
        assert verifyObject(IHandlerPlugin, plugin)
        assert plugin.name and plugin.description


def test_discover_handlers_asks_twisted_plugin_for_handler_plugins(monkeypatch):
    """Discovery asks twisted.plugin for IHandlerPlugin providers in the twisted.plugins package."""
    calls = []

    def fake_get_plugins(interface, package=None):
        calls.append((interface, package))
        return iter([])

    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", fake_get_plugins)
    assert discover_handlers() == {}
    import twisted.plugins

    assert calls == [(IHandlerPlugin, twisted.plugins)]


def test_duplicate_handler_names_are_refused(monkeypatch):
    """Two installed plugins with one name raise DuplicateHandler naming both, instead of one winning by luck."""
    first = HandlerPlugin("echo", "wsdaemon.handlers.echo", "the real echo")
    second = HandlerPlugin("echo", "thirdparty.echo", "an impostor")
    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", lambda interface, package=None: iter([first, second]))
    with pytest.raises(DuplicateHandler) as raised:
        discover_handlers()
    message = str(raised.value)
    assert "'echo'" in message
    assert "wsdaemon.handlers.echo" in message and "thirdparty.echo" in message


def test_distinct_names_from_several_plugins_are_all_found(monkeypatch):
    """Plugins from several packages with different names are all registered."""
    plugins = [HandlerPlugin(name, f"pkg.{name}", name) for name in ("echo", "chat", "relay")]
    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", lambda interface, package=None: iter(plugins))
    assert sorted(discover_handlers()) == ["chat", "echo", "relay"]


# --- HandlerPlugin --------------------------------------------------------------------------


@pytest.fixture
def fake_module(monkeypatch):
    """A handler implementation module, importable as ``fake_handler_impl``, that records its calls."""
    module = types.ModuleType("fake_handler_impl")
    module.calls = []

    def build_factory(options, endpoint):
        module.calls.append((dict(options), endpoint))
        return "the factory"

    module.build_factory = build_factory
    monkeypatch.setitem(sys.modules, "fake_handler_impl", module)
    return module


def test_build_factory_passes_options_and_endpoint_to_the_module(fake_module):
    """buildFactory hands the endpoint's options and path to the module's build_factory and returns its result."""
    plugin = HandlerPlugin("fake", "fake_handler_impl", "a fake", {"room": "string: the room name"})
    assert plugin.buildFactory({"room": "lobby"}, "/chat") == "the factory"
    assert fake_module.calls == [({"room": "lobby"}, "/chat")]


def test_build_factory_taking_a_context_gets_the_daemons(fake_module):
    """A module whose build_factory takes a third argument gets the HandlerContext the daemon passes."""
    context = HandlerContext(MemoryReactorClock(), MultiService())

    def build_factory(options, endpoint, context):
        fake_module.calls.append((dict(options), endpoint, context))
        return "the factory"

    fake_module.build_factory = build_factory
    plugin = HandlerPlugin("fake", "fake_handler_impl", "a fake")
    assert plugin.buildFactory({}, "/chat", context) == "the factory"
    assert fake_module.calls == [({}, "/chat", context)]


def test_two_argument_build_factory_still_works_when_given_a_context(fake_module):
    """A handler module written before the context existed is called with (options, endpoint) only."""
    plugin = HandlerPlugin("fake", "fake_handler_impl", "a fake", {"room": "string"})
    context = HandlerContext(MemoryReactorClock(), MultiService())
    assert plugin.buildFactory({"room": "lobby"}, "/chat", context) == "the factory"
    assert fake_module.calls == [({"room": "lobby"}, "/chat")]


def test_build_handler_factory_calls_old_and_new_plugins_alike():
    """The daemon calls buildFactory with the context where the plugin takes it, and without it otherwise."""
    context = HandlerContext(MemoryReactorClock(), MultiService())

    class Old:
        def buildFactory(self, options, endpoint):
            return ("old", endpoint)

    class New:
        def buildFactory(self, options, endpoint, context):
            return ("new", context)

    assert build_handler_factory(Old(), {}, "/a", context) == ("old", "/a")
    assert build_handler_factory(New(), {}, "/a", context) == ("new", context)
    assert not takes_context(Old().buildFactory) and takes_context(New().buildFactory)


def test_unknown_option_is_rejected_with_handler_options_error(fake_module):
    """An option the plugin does not declare raises HandlerOptionsError naming it and the known options."""
    plugin = HandlerPlugin("fake", "fake_handler_impl", "a fake", {"room": "string", "size": "int"})
    with pytest.raises(HandlerOptionsError) as raised:
        plugin.buildFactory({"rooom": "lobby"}, "/chat")
    assert raised.value.option == "rooom"
    assert "room" in raised.value.expected and "size" in raised.value.expected
    assert fake_module.calls == []


def test_every_unknown_option_is_rejected_at_once_with_a_suggestion(fake_module):
    """Two unknown options are both named, each with the nearest declared option as a "did you mean"."""
    plugin = HandlerPlugin("fake", "fake_handler_impl", "a fake", {"room": "string", "size": "int"})
    with pytest.raises(InvalidHandlerOptions) as raised:
        plugin.buildFactory({"rooom": "lobby", "sise": 3}, "/chat")
    assert [(each.option, each.expected) for each in raised.value.errors] == [
        ("rooom", "one of: room, size (did you mean room?)"),
        ("sise", "one of: room, size (did you mean size?)"),
    ]


def test_unknown_option_is_rejected_before_importing_the_module():
    """Option names are checked from the descriptor alone; the implementation is not imported for a typo."""
    plugin = HandlerPlugin("ghost", "no_such_module_anywhere", "not installed")
    with pytest.raises(HandlerOptionsError):
        plugin.buildFactory({"x": 1}, "/ghost")


def test_implementation_is_imported_only_when_used():
    """Creating the descriptor imports nothing; the module is imported by buildFactory."""
    plugin = HandlerPlugin("ghost", "no_such_module_anywhere", "not installed")
    assert plugin.name == "ghost"
    with pytest.raises(ModuleNotFoundError):
        plugin.buildFactory({}, "/ghost")


def test_plugin_options_are_read_only():
    """A plugin's declared options cannot be changed through the descriptor."""
    plugin = HandlerPlugin("fake", "fake_handler_impl", "a fake", {"room": "string"})
    with pytest.raises(TypeError):
        plugin.options["extra"] = "sneaky"  # type: ignore[index]


def test_echo_plugin_builds_a_working_factory():
    """The echo plugin's factory builds a handler that sends text and bytes straight back."""
    factory = discover_handlers()["echo"].buildFactory({}, "/echo")
    handler = factory.buildProtocol(None)
    sent = []

    class Transport:
        def sendTextMessage(self, text):
            sent.append(text)

        def sendBytesMessage(self, data):
            sent.append(data)

    handler.negotiationStarted(Transport())
    handler.negotiationFinished()
    handler.textMessageReceived("hi")
    handler.bytesMessageReceived(b"\x00")
    assert sent == ["hi", b"\x00"]


def test_echo_rejects_any_option():
    """echo takes no options, so any option is reported as an error."""
    with pytest.raises(HandlerOptionsError) as raised:
        discover_handlers()["echo"].buildFactory({"verbose": True}, "/echo")
    assert raised.value.option == "verbose"


# --- --list-handlers text ---------------------------------------------------------------------


def test_describe_handlers_lists_names_descriptions_and_options():
    """The --list-handlers text has one line per handler, then its options indented, sorted by name."""
    handlers = {
        "relay": HandlerPlugin(
            "relay",
            "pkg.relay",
            "forwards to a TCP backend",
            {"port": "int: backend port", "host": "str: backend host"},
        ),
        "echo": HandlerPlugin("echo", "pkg.echo", "sends messages back"),
    }
    assert describe_handlers(handlers).splitlines() == [
        "echo: sends messages back",
        "    (no options)",
        "relay: forwards to a TCP backend",
        "    host: str: backend host",
        "    port: int: backend port",
    ]


def test_describe_handlers_includes_the_builtin_echo():
    """The installed handlers' description names echo and says it takes no options."""
    text = describe_handlers(discover_handlers())
    assert text.startswith("echo: ") or "\necho: " in text
    assert "(no options)" in text


# --- plugin modules are import-cheap (DESIGN §3 rule 10) ---------------------------------------


def test_plugin_modules_do_not_import_implementations():
    """Importing twisted/plugins/wsdaemon_*.py loads neither the handler code, the tap nor a reactor."""
    code = (
        "import sys\n"
        "import twisted.plugins.wsdaemon_handlers, twisted.plugins.wsdaemon_plugin\n"
        "heavy = ['wsdaemon.handlers.echo', 'wsdaemon.tap', 'wsdaemon.service', 'twisted.internet.reactor', 'twisted.web.server']\n"
        "print(','.join(name for name in heavy if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_no_init_files_in_twisted_plugins():
    """twisted/ and twisted/plugins/ have no __init__.py, which would shadow the real twisted package."""
    assert not (REPO_ROOT / "twisted" / "__init__.py").exists()
    assert not (REPO_ROOT / "twisted" / "plugins" / "__init__.py").exists()


# --- built-in handlers and broken third-party plugins ------------------------------------------


def test_all_builtin_handlers_are_found_as_plugins():
    """echo, broadcast, process and tcp are all discovered through twisted.plugin, like any third-party handler."""
    handlers = discover_handlers()
    assert {"echo", "broadcast", "process", "tcp"} <= set(handlers)
    assert {handlers[name].module for name in ("broadcast", "process", "tcp")} == {
        "wsdaemon.handlers.broadcast",
        "wsdaemon.handlers.process",
        "wsdaemon.handlers.tcp",
    }


def test_broken_plugin_module_is_named_in_one_line(monkeypatch):
    """A plugin module that fails to import gives one error line naming it; the other handlers are still found."""
    from twisted.logger import capturedLogs
    from twisted.python import log as legacy_log

    echo = HandlerPlugin("echo", "wsdaemon.handlers.echo", "echo")

    def get_plugins(interface, package=None):
        path = "/opt/site/twisted/plugins/vendor_handlers.py"
        try:
            # A frame "in" a plugin file, as a real failed plugin import has.
            exec(compile("import no_such_dependency_xyz", path, "exec"), {})
        except ImportError:
            legacy_log.err()  # what twisted.plugin does for a module that fails to import
        return iter([echo])

    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", get_plugins)
    broken: list[BrokenPlugin] = []
    with capturedLogs() as events:
        assert list(discover_handlers(broken)) == ["echo"]
    assert broken == [
        BrokenPlugin(
            "twisted.plugins.vendor_handlers",
            "/opt/site/twisted/plugins/vendor_handlers.py",
            "ModuleNotFoundError: No module named 'no_such_dependency_xyz'",
        )
    ]
    lines = [event for event in events if event.get("log_namespace") == "wsdaemon.plugins"]
    assert len(lines) == 1 and "twisted.plugins.vendor_handlers" in str(lines[0]["module"])


@pytest.fixture
def broken_plugin_installed(tmp_path, monkeypatch):
    """A real plugin module that fails to import, in a twisted/plugins folder that twisted.plugin scans."""
    return install_broken_plugin(tmp_path, monkeypatch)


def test_a_real_broken_plugin_gives_one_line_and_the_traceback_only_at_debug(broken_plugin_installed):
    """A plugin module that fails to import logs one error line naming it; Twisted's traceback comes at debug level only."""
    from twisted.logger import capturedLogs

    broken: list[BrokenPlugin] = []
    with capturedLogs() as events:
        handlers = discover_handlers(broken)
    assert "echo" in handlers
    assert [module.path for module in broken] == [str(broken_plugin_installed)]
    loud = [event for event in events if event["log_level"] > LogLevel.debug]
    assert [event["log_namespace"] for event in loud] == ["wsdaemon.plugins"]
    assert "twisted.plugins.vendor_broken_now" in str(loud[0]["module"])
    quiet = [event for event in events if event["log_level"] == LogLevel.debug and "failure" in event]
    assert len(quiet) == 1 and "no_such_dependency_xyz" in quiet[0]["failure"].getTraceback()


def test_twisted_plugins_own_report_of_a_broken_plugin_is_recognised(tmp_path, monkeypatch):
    """The critical-level traceback twist's own plugin scans log is recognised, so the log formatters leave it out."""
    from twisted.python.failure import Failure

    report = plugin_import_report(tmp_path, monkeypatch)
    assert report["log_level"] == LogLevel.critical and is_plugin_import_report(report)
    assert not is_plugin_import_report({**report, "log_level": LogLevel.debug})
    try:
        raise ValueError("an unrelated failure")
    except ValueError:
        assert not is_plugin_import_report({"log_failure": Failure(), "log_level": LogLevel.critical})


def test_broken_plugin_with_a_syntax_error_is_named_from_the_error():
    """A SyntaxError has no frame in the plugin module; the module is named from the error's file name."""
    from twisted.python.failure import Failure

    try:
        compile("def (", "/srv/venv/lib/python3.11/site-packages/twisted/plugins/typo.py", "exec")
    except SyntaxError:
        failure = Failure()
    module = broken_plugin(failure)
    assert module.module == "twisted.plugins.typo" and module.error.startswith("SyntaxError: ")


def test_list_handlers_names_a_broken_plugin_module_and_still_lists_the_rest(tmp_path):
    """--list-handlers with an installed plugin module that cannot import: one stderr line naming it, exit 0."""
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "vendor_broken.py").write_text("import no_such_dependency_xyz\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "twisted", "wsdaemon", "--list-handlers"],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # twist itself scans the plugins twice (reactors, subcommands) before wsdaemon is imported,
    # and Twisted prints each failed import; wsdaemon's own scan adds no traceback.
    assert result.stderr.count("Unhandled Error") <= 2
    ours = [line for line in result.stderr.splitlines() if line.startswith("wsdaemon: ")]
    assert ours == [
        (
            f"wsdaemon: plugin module twisted.plugins.vendor_broken ({plugins / 'vendor_broken.py'}) failed to import, "
            "so its handlers are missing: ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
        )
    ]
    assert any(line.startswith("echo: ") for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "runner",
    [[sys.executable, "-m", "twisted"], [str(Path(sys.executable).parent / "twistd"), "--nodaemon", "--pidfile="]],
    ids=["twist", "twistd"],
)
def test_check_config_names_a_broken_plugin_module_once(tmp_path, runner):
    """--check-config (twist or twistd) with a plugin module that cannot import: one stderr line naming it, still exit 0."""
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "vendor_broken.py").write_text("import no_such_dependency_xyz\n")
    result = subprocess.run(
        [*runner, "wsdaemon", "--check-config"],
        check=False,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("wsdaemon: ")]
    assert ours == [
        f"wsdaemon: plugin module twisted.plugins.vendor_broken ({plugins / 'vendor_broken.py'}) failed to import, "
        "so its handlers are missing: ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    ]
    assert "configuration OK" in result.stdout
