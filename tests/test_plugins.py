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
    OldLocationPlugin,
    broken_plugin,
    build_handler_factory,
    describe_handlers,
    discover_handlers,
    is_plugin_import_report,
    takes_context,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def found_in_wsdaemon_plugins(plugins):
    """A fake ``getPlugins`` that finds ``plugins`` in wsdaemon_plugins and nothing in twisted.plugins."""
    import wsdaemon_plugins

    return lambda interface, package=None: iter(plugins if package is wsdaemon_plugins else [])


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
    """Discovery asks twisted.plugin for IHandlerPlugin providers in wsdaemon_plugins, then in twisted.plugins (the old location)."""
    calls = []

    def fake_get_plugins(interface, package=None):
        calls.append((interface, package))
        return iter([])

    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", fake_get_plugins)
    assert discover_handlers() == {}
    import twisted.plugins
    import wsdaemon_plugins

    assert calls == [(IHandlerPlugin, wsdaemon_plugins), (IHandlerPlugin, twisted.plugins)]


def test_duplicate_handler_names_are_refused(monkeypatch):
    """Two installed plugins with one name raise DuplicateHandler naming both, instead of one winning by luck."""
    first = HandlerPlugin("echo", "wsdaemon.handlers.echo", "the real echo")
    second = HandlerPlugin("echo", "thirdparty.echo", "an impostor")
    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", found_in_wsdaemon_plugins([first, second]))
    with pytest.raises(DuplicateHandler) as raised:
        discover_handlers()
    message = str(raised.value)
    assert "'echo'" in message
    assert "wsdaemon.handlers.echo" in message and "thirdparty.echo" in message


def test_distinct_names_from_several_plugins_are_all_found(monkeypatch):
    """Plugins from several packages with different names are all registered."""
    plugins = [HandlerPlugin(name, f"pkg.{name}", name) for name in ("echo", "chat", "relay")]
    monkeypatch.setattr(wsdaemon.plugins, "getPlugins", found_in_wsdaemon_plugins(plugins))
    assert sorted(discover_handlers()) == ["chat", "echo", "relay"]


def test_one_name_in_both_plugin_packages_is_refused(monkeypatch):
    """A plugin in wsdaemon_plugins and one of the same name in twisted.plugins are a duplicate, not a silent choice."""
    new = HandlerPlugin("chat", "vendor.chat_v2", "the moved copy")
    old = HandlerPlugin("chat", "vendor.chat", "the copy left behind")
    import twisted.plugins

    monkeypatch.setattr(
        wsdaemon.plugins,
        "getPlugins",
        lambda interface, package=None: iter([old if package is twisted.plugins else new]),
    )
    with pytest.raises(DuplicateHandler) as raised:
        discover_handlers()
    assert str(raised.value) == (
        "handler name 'chat' is provided twice: <handler plugin 'chat' from vendor.chat_v2> "
        "and <handler plugin 'chat' from vendor.chat>"
    )


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
    """Importing the plugin descriptors and the service maker loads neither the handler code, the tap nor a reactor."""
    code = (
        "import sys\n"
        "import wsdaemon_plugins.wsdaemon_handlers, twisted.plugins.wsdaemon_plugin\n"
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


def test_twisted_plugins_holds_only_the_service_maker():
    """twist and twistd import every module in twisted/plugins/: wsdaemon puts only its service maker there."""
    assert sorted(path.name for path in (REPO_ROOT / "twisted" / "plugins").glob("*.py")) == ["wsdaemon_plugin.py"]


def test_wsdaemon_plugins_spans_every_sys_path_entry(tmp_path, monkeypatch):
    """wsdaemon_plugins, like twisted.plugins, reads the wsdaemon_plugins/ folder of every sys.path entry."""
    import importlib

    import wsdaemon_plugins

    assert (REPO_ROOT / "wsdaemon_plugins" / "__init__.py").is_file()
    (tmp_path / "wsdaemon_plugins").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    reloaded = importlib.reload(wsdaemon_plugins)
    try:
        assert str(tmp_path / "wsdaemon_plugins") in reloaded.__path__
        assert reloaded.__all__ == []
    finally:
        monkeypatch.undo()
        importlib.reload(wsdaemon_plugins)


# --- subprocesses as an operator runs them ------------------------------------------------------

GOOD_DESCRIPTOR = """from wsdaemon.plugins import HandlerPlugin

{name} = HandlerPlugin(name="{name}", module="wsdaemon.handlers.echo", description="{description}")
"""


def run_wsdaemon(runner: list[str], arguments: list[str], site: Path) -> subprocess.CompletedProcess[str]:
    """``<runner> wsdaemon <arguments>`` with ``site`` on PYTHONPATH, as an operator types it."""
    return subprocess.run(
        [*runner, "wsdaemon", *arguments],
        check=False,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=60,
    )


RUNNERS = [
    [str(Path(sys.executable).parent / "twist")],
    [str(Path(sys.executable).parent / "twistd"), "--nodaemon", "--pidfile="],
]


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
        import twisted.plugins

        if package is not twisted.plugins:
            return iter([echo])
        path = "/opt/site/twisted/plugins/vendor_handlers.py"
        try:
            # A frame "in" a plugin file, as a real failed plugin import has.
            exec(compile("import no_such_dependency_xyz", path, "exec"), {})
        except ImportError:
            legacy_log.err()  # what twisted.plugin does for a module that fails to import
        return iter([])

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
    result = run_wsdaemon(runner, ["--check-config"], tmp_path)
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("wsdaemon: ")]
    assert ours == [
        f"wsdaemon: plugin module twisted.plugins.vendor_broken ({plugins / 'vendor_broken.py'}) failed to import, "
        "so its handlers are missing: ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    ]
    assert "configuration OK" in result.stdout


# --- wsdaemon_plugins/, the location twist and twistd never import ------------------------------


@pytest.mark.parametrize("runner", RUNNERS, ids=["twist", "twistd"])
def test_a_broken_module_in_wsdaemon_plugins_is_one_line_and_no_traceback(tmp_path, runner):
    """--check-config (twist or twistd) with a broken wsdaemon_plugins/ module: exactly one stderr line, no Twisted traceback."""
    plugins = tmp_path / "wsdaemon_plugins"
    plugins.mkdir()
    (plugins / "vendor_broken.py").write_text("import no_such_dependency_xyz\n")
    result = run_wsdaemon(runner, ["--check-config"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Unhandled Error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    about = [line for line in result.stderr.splitlines() if "vendor_broken" in line or "no_such_dependency" in line]
    assert about == [
        f"wsdaemon: plugin module wsdaemon_plugins.vendor_broken ({plugins / 'vendor_broken.py'}) failed to import, "
        "so its handlers are missing: ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    ]
    assert "configuration OK" in result.stdout


def test_a_real_broken_module_in_wsdaemon_plugins_is_named_after_its_package(tmp_path, monkeypatch):
    """wsdaemon's own scan names a broken wsdaemon_plugins module once; Twisted's traceback stays at debug level."""
    from twisted.logger import capturedLogs

    path = install_broken_plugin(tmp_path, monkeypatch, package="wsdaemon_plugins")
    monkeypatch.setattr(wsdaemon.plugins, "_reported", set())
    broken: list[BrokenPlugin] = []
    with capturedLogs() as events:
        assert "echo" in discover_handlers(broken)
        assert "jwt" in wsdaemon.plugins.discover_authenticators(broken)
    assert {module.module for module in broken} == {"wsdaemon_plugins.vendor_broken_now"}
    assert {module.path for module in broken} == {str(path)}
    loud = [event for event in events if event["log_level"] > LogLevel.debug]
    assert [event["log_namespace"] for event in loud] == ["wsdaemon.plugins"]


def test_list_handlers_lists_plugins_from_both_locations(tmp_path):
    """--list-handlers shows the built-ins, a wsdaemon_plugins/ handler and one left in twisted/plugins/."""
    (tmp_path / "wsdaemon_plugins").mkdir()
    (tmp_path / "wsdaemon_plugins" / "vendor_new.py").write_text(
        GOOD_DESCRIPTOR.format(name="newstyle", description="found in wsdaemon_plugins")
    )
    (tmp_path / "twisted" / "plugins").mkdir(parents=True)
    (tmp_path / "twisted" / "plugins" / "vendor_old.py").write_text(
        GOOD_DESCRIPTOR.format(name="oldstyle", description="found in twisted/plugins")
    )
    result = run_wsdaemon(RUNNERS[0], ["--list-handlers"], tmp_path)
    assert result.returncode == 0, result.stderr
    listed = {line.split(":")[0] for line in result.stdout.splitlines() if not line.startswith(" ")}
    assert listed == {"broadcast", "echo", "process", "tcp", "newstyle", "oldstyle"}
    (notice,) = result.stderr.splitlines()  # logging has not started: the old location's notice is on stderr
    assert notice.startswith(
        "wsdaemon: handler plugin 'oldstyle' (<handler plugin 'oldstyle' from wsdaemon.handlers.echo>)"
    )
    assert "is in twisted/plugins/, the old location" in notice and "move its module to wsdaemon_plugins/" in notice


@pytest.mark.parametrize("runner", RUNNERS, ids=["twist", "twistd"])
def test_check_config_recommends_moving_a_plugin_left_in_twisted_plugins(tmp_path, runner):
    """--check-config names each plugin still in twisted/plugins/ once on stderr; the configuration is still OK."""
    (tmp_path / "twisted" / "plugins").mkdir(parents=True)
    (tmp_path / "twisted" / "plugins" / "vendor_old.py").write_text(
        GOOD_DESCRIPTOR.format(name="oldstyle", description="found in twisted/plugins")
    )
    config = tmp_path / "old.toml"
    config.write_text('[[endpoints]]\npath = "/old"\nhandler = "oldstyle"\n')
    result = run_wsdaemon(runner, ["--check-config", "--config", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "oldstyle" in line] == [
        "wsdaemon: handler plugin 'oldstyle' (<handler plugin 'oldstyle' from wsdaemon.handlers.echo>) is in "
        "twisted/plugins/, the old location: it still works, but move its module to wsdaemon_plugins/ (twist and "
        "twistd import every module in twisted/plugins/ themselves and print Twisted's tracebacks for one that "
        "fails to import; see docs/handlers.md)"
    ]
    assert "configuration OK" in result.stdout


@pytest.fixture
def old_location_handler(tmp_path, monkeypatch):
    """A working handler descriptor in a twisted/plugins/ folder (the old location), with no notices given yet."""
    import twisted.plugins

    folder = tmp_path / "twisted" / "plugins"
    folder.mkdir(parents=True)
    (folder / "vendor_old_location.py").write_text(GOOD_DESCRIPTOR.format(name="legacy", description="an old plugin"))
    monkeypatch.setattr(twisted.plugins, "__path__", [*twisted.plugins.__path__, str(folder)])
    monkeypatch.setattr(wsdaemon.plugins, "_moved_reported", set())
    return folder


def test_a_plugin_in_twisted_plugins_still_works_with_one_notice_per_process(old_location_handler):
    """A handler in twisted/plugins/ is found and builds; one info line per process recommends wsdaemon_plugins/."""
    from twisted.logger import capturedLogs, formatEvent

    moved: list[OldLocationPlugin] = []
    with capturedLogs() as events:
        first, again = discover_handlers(moved=moved), discover_handlers()
    assert first["legacy"].description == "an old plugin" and "legacy" in again
    assert moved == [OldLocationPlugin("handler", "legacy", "<handler plugin 'legacy' from wsdaemon.handlers.echo>")]
    assert "echo" in first  # the built-ins come from wsdaemon_plugins, without a notice
    notices = [event for event in events if event.get("log_namespace") == "wsdaemon.plugins"]
    assert [event["log_level"] for event in notices] == [LogLevel.info]
    text = formatEvent(notices[0])
    assert text.startswith("handler plugin 'legacy' (<handler plugin 'legacy' from wsdaemon.handlers.echo>)")
    assert "is in twisted/plugins/" in text and "move its module to wsdaemon_plugins/" in text


def test_the_builtins_are_not_in_the_old_location():
    """No built-in handler or authenticator is found in twisted.plugins (so none triggers the notice)."""
    from twisted.plugin import getPlugins

    import twisted.plugins
    from wsdaemon.interfaces import IAuthenticatorPlugin

    assert list(getPlugins(IHandlerPlugin, twisted.plugins)) == []
    assert list(getPlugins(IAuthenticatorPlugin, twisted.plugins)) == []
