"""The process handler (wsdaemon.handlers.process) on a fake process reactor: no child processes, no sockets.

Real programs run in tests/integration/test_handlers.py.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from wsdaemon.core import Limits
from wsdaemon.handlers.process import ProcessFactory, build_factory
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError
from wsdaemon.plugins import discover_handlers
from wsdaemon.testing import MemoryClient, MemoryServer

PROGRAM = sys.executable


class FakeProcess:
    """An ``IProcessTransport`` that records what the handler does to its program."""

    pid = 4242

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.stdin: list[bytes] = []
        self.signals: list[str] = []
        self.reading = True
        self.stdin_closed = False
        self.producer: Any = None
        self.ended = False

    def write(self, data: bytes) -> None:
        self.stdin.append(data)

    def pauseProducing(self) -> None:
        self.reading = False

    def resumeProducing(self) -> None:
        self.reading = True

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, name: str) -> None:
        if self.ended:
            raise ProcessExitedAlready()
        self.signals.append(name)

    # what the program does
    def stdout(self, data: bytes) -> None:
        self.protocol.outReceived(data)

    def stderr(self, data: bytes) -> None:
        self.protocol.errReceived(data)

    def exit(self, status: int = 0) -> None:
        self.ended = True
        reason = ProcessDone(0) if status == 0 else ProcessTerminated(exitCode=status)
        self.protocol.processEnded(Failure(reason))


class ProcessReactor(MemoryReactorClock):
    """A memory clock that "spawns" FakeProcesses and remembers how."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[dict[str, Any]] = []
        self.processes: list[FakeProcess] = []
        self.fail_with: Exception | None = None

    def spawnProcess(
        self,
        protocol: Any,
        executable: str,
        args: list[str],
        env: dict[str, str] | None = None,
        path: str | None = None,
        **kwargs: Any,
    ) -> FakeProcess:
        if self.fail_with is not None:
            raise self.fail_with
        self.spawned.append({"executable": executable, "args": args, "env": env, "path": path})
        process = FakeProcess(protocol)
        protocol.makeConnection(process)
        self.processes.append(process)
        return process


def context(reactor: Any = None) -> HandlerContext:
    """What the daemon gives the factory: the (fake process) reactor, and a service tree of its own."""
    return HandlerContext(reactor if reactor is not None else ProcessReactor(), MultiService())


def serve(
    options: dict[str, Any] | None = None, limits: Limits | None = None, **server: Any
) -> tuple[MemoryServer, ProcessReactor]:
    memory_server, reactor, _services = serve_with_services(options, limits, **server)
    return memory_server, reactor


def serve_with_services(
    options: dict[str, Any] | None = None, limits: Limits | None = None, **server: Any
) -> tuple[MemoryServer, ProcessReactor, MultiService]:
    """A server for /run, its fake reactor, and the services the handler joined (the daemon stops those)."""
    reactor = ProcessReactor()
    services = MultiService()
    factory = build_factory(
        {"command": [PROGRAM, "-c", "pass"], **(options or {})}, "/run", HandlerContext(reactor, services)
    )
    return MemoryServer({"/run": factory}, reactor=reactor, limits=limits, **server), reactor, services


def run(
    options: dict[str, Any] | None = None, path: str = "/run", **connect: Any
) -> tuple[MemoryClient, FakeProcess, ProcessReactor]:
    server, reactor = serve(options)
    client = server.connect(path, **connect)
    assert client.accepted
    return client, reactor.processes[-1], reactor


# --- options ---------------------------------------------------------------------------------------


def test_command_is_required():
    """Without command the endpoint is refused at startup, naming the option."""
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory({}, "/run", context())
    assert raised.value.option == "command" and raised.value.got == "missing"


@pytest.mark.parametrize("command", ["/bin/cat", [], [""], ["/bin/cat", 3]])
def test_command_must_be_a_list_of_strings(command):
    """command is a non-empty list of non-empty strings (never a shell line)."""
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory({"command": command}, "/run", context())
    assert raised.value.option == "command" and "list" in raised.value.expected


def test_missing_program_is_reported_at_startup(tmp_path):
    """A program that does not exist (or is not executable) is a config error, not a failure per connection."""
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("echo hi\n")
    for program in ["/no/such/program", "no-such-program-on-path", str(not_executable)]:
        with pytest.raises(HandlerOptionsError) as raised:
            build_factory({"command": [program]}, "/run", context())
        assert raised.value.option == "command" and raised.value.got == program


def test_every_bad_option_is_reported_together(tmp_path):
    """A missing program, a relative working directory and a bad mode are all reported in one error."""
    options = {"command": ["/no/such/program"], "working_directory": "relative/dir", "mode": "lines"}
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory(options, "/run", context())
    assert [each.option for each in raised.value.errors] == ["command", "working_directory", "mode"]


def test_bare_program_name_is_found_on_path():
    """A bare name such as "cat" is resolved on PATH when the endpoint is built."""
    factory = build_factory({"command": ["cat", "-u"]}, "/run", context())
    assert os.path.isabs(factory.settings.executable) and factory.settings.command == ("cat", "-u")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("mode", "lines", '"text", "binary"'),
        ("max_processes", 0, "an integer from 1 to"),
        ("kill_timeout_seconds", "5", "a number from 0.1 to"),
        ("max_line_bytes", -1, "an integer from 1 to"),
        ("working_directory", "relative/dir", "absolute path of an existing directory"),
        ("working_directory", "/no/such/dir", "absolute path of an existing directory"),
        ("environment", {"LANG": 1}, "a table of strings"),
        ("environment", ["LANG=C"], "a table of strings"),
    ],
)
def test_bad_option_is_reported(option, value, expected):
    """Each wrong option raises HandlerOptionsError naming it and what it expects."""
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory({"command": ["cat"], option: value}, "/run", context())
    assert raised.value.option == option and expected in raised.value.expected


def test_plugin_declares_every_option_the_module_reads(tmp_path):
    """The plugin descriptor lists exactly the options the module accepts."""
    plugin = discover_handlers()["process"]
    values = {
        "command": ["cat"],
        "mode": "binary",
        "max_processes": 3,
        "kill_timeout_seconds": 1,
        "max_line_bytes": 10,
        "working_directory": str(tmp_path),
        "environment": {"LANG": "C.UTF-8"},
    }
    assert set(plugin.options) == set(values)
    factory = plugin.buildFactory(values, "/run", context())
    assert isinstance(factory, ProcessFactory) and factory.settings.working_directory == str(tmp_path)


# --- the program and its environment -------------------------------------------------------------------


def test_program_argv_comes_only_from_the_config():
    """The program runs with the configured argv whatever the client's path, query and headers say."""
    _client, _process, reactor = run(path="/run/extra?arg=--evil", headers=[("X-Args", "rm -rf /")])
    assert reactor.spawned[0]["args"] == [PROGRAM, "-c", "pass"]
    assert reactor.spawned[0]["executable"] == PROGRAM


def test_programs_are_spawned_with_the_daemons_reactor_not_the_requests():
    """The program is spawned on the reactor the daemon lent the factory, not on request.site.reactor."""
    daemon_reactor = ProcessReactor()
    factory = build_factory({"command": [PROGRAM, "-c", "pass"]}, "/run", context(daemon_reactor))
    server = MemoryServer({"/run": factory}, reactor=ProcessReactor())
    assert server.connect("/run").accepted
    assert len(daemon_reactor.spawned) == 1 and server.reactor.spawned == []


def test_request_reaches_the_program_as_cgi_variables():
    """REMOTE_ADDR, PATH_INFO, QUERY_STRING, SCRIPT_NAME, HTTP_* and WEBSOCKET_SUBPROTOCOL describe the request."""
    server, reactor = serve(subprotocols=["chat.v1"])
    client = server.connect(
        "/run/a/b?x=1&y=2",
        headers=[("X-Token", "t0k"), ("Proxy", "http://evil")],
        subprotocols=["chat.v1"],
        peer="192.0.2.7",
    )
    assert client.accepted
    env = reactor.spawned[0]["env"]
    assert env["REMOTE_ADDR"] == "192.0.2.7" and env["REMOTE_PORT"].isdigit()
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/run", "/a/b", "x=1&y=2")
    assert (env["REQUEST_METHOD"], env["REQUEST_URI"], env["SERVER_PROTOCOL"]) == (
        "GET",
        "/run/a/b?x=1&y=2",
        "HTTP/1.1",
    )
    assert env["HTTP_X_TOKEN"] == "t0k" and env["HTTP_SEC_WEBSOCKET_PROTOCOL"] == "chat.v1"
    assert env["WEBSOCKET_SUBPROTOCOL"] == "chat.v1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["SERVER_SOFTWARE"].startswith("wsdaemon/")
    assert "HTTP_PROXY" not in env and "HTTPS" not in env


def test_program_environment_is_path_plus_configured_variables(monkeypatch):
    """Only PATH and the configured environment table come from outside the request: no daemon secrets leak."""
    monkeypatch.setenv("WSDAEMON_TEST_SECRET", "hunter2")
    _client, _process, reactor = run({"environment": {"LANG": "C.UTF-8"}})
    env = reactor.spawned[0]["env"]
    assert env["PATH"] == os.environ["PATH"] and env["LANG"] == "C.UTF-8"
    assert "WSDAEMON_TEST_SECRET" not in env
    assert "WEBSOCKET_SUBPROTOCOL" not in env and env["PATH_INFO"] == ""


def test_working_directory_is_passed_to_the_program(tmp_path):
    """working_directory is where the program runs."""
    _client, _process, reactor = run({"working_directory": str(tmp_path)})
    assert reactor.spawned[0]["path"] == str(tmp_path)


# --- text and binary modes ---------------------------------------------------------------------------------


def test_text_mode_each_stdout_line_is_a_text_message():
    """Lines are split wherever the chunks break; CRLF and LF both end a line; the newline is not sent."""
    client, process, _ = run()
    process.stdout(b"hello\nwor")
    process.stdout(b"ld\r\nthird")
    assert client.received() == ["hello", "world"]
    process.stdout(b"\n")
    assert client.received() == ["third"]


def test_text_mode_each_message_is_a_line_on_stdin():
    """A text message is written to stdin followed by a newline; a binary message too."""
    client, process, _ = run()
    client.send_text("héllo")
    client.send_bytes(b"raw")
    assert process.stdin == ["héllo\n".encode(), b"raw\n"]


def test_text_mode_invalid_utf8_output_is_replaced():
    """A line that is not UTF-8 still arrives, with U+FFFD for the bad bytes."""
    client, process, _ = run()
    process.stdout(b"caf\xe9\n")
    assert client.received() == ["caf\ufffd"]


def test_binary_mode_passes_bytes_both_ways_unchanged():
    """In binary mode stdout chunks become binary messages and messages go to stdin without a newline."""
    client, process, _ = run({"mode": "binary"})
    process.stdout(b"\x00\x01\n\x02")
    client.send_bytes(b"\xff")
    client.send_text("t")
    assert client.received() == [b"\x00\x01\n\x02"]
    assert process.stdin == [b"\xff", b"t"]


def test_stderr_goes_to_the_log_not_to_the_client():
    """Each stderr line is logged with the endpoint; nothing of it reaches the peer."""
    client, process, _ = run()
    with capturedLogs() as events:
        process.stderr(b"warning: one\nwarning: tw")
        process.stderr(b"o\n")
    lines = [event["line"] for event in events if "line" in event]
    assert lines == ["warning: one", "warning: two"]
    assert client.received() == []


def test_output_line_over_max_line_bytes_closes_with_1011():
    """A line longer than max_line_bytes (no newline in sight) closes the connection with 1011, not memory growth."""
    client, process, _ = run({"max_line_bytes": 10})
    with capturedLogs():
        process.stdout(b"x" * 11)
    assert client.close_code == 1011


# --- lifetimes ----------------------------------------------------------------------------------------------------


def test_program_exiting_with_0_closes_with_1000_after_its_last_line():
    """A zero exit status closes the connection with 1000; a last line without a newline is still sent."""
    client, process, _ = run()
    process.stdout(b"bye")
    process.exit(0)
    assert client.received() == ["bye"]
    assert client.close_code == 1000
    assert client.closed


def test_program_failing_closes_with_1011():
    """A non-zero exit status closes the connection with 1011; the status goes to the log, not the wire."""
    client, process, _ = run()
    with capturedLogs() as events:
        process.exit(3)
    assert client.close_code == 1011 and client.close_reason == "program failed"
    assert any("exit" in str(event.get("why", "")) for event in events)


def test_closing_the_connection_terminates_the_program_then_kills_it():
    """When the peer leaves: stdin is closed and SIGTERM sent; SIGKILL follows after kill_timeout_seconds."""
    client, process, reactor = run({"kill_timeout_seconds": 3})
    client.close()
    assert process.stdin_closed and process.signals == ["TERM"]
    reactor.advance(2.9)
    assert process.signals == ["TERM"]
    reactor.advance(0.1)
    assert process.signals == ["TERM", "KILL"]


def test_program_that_exits_on_sigterm_is_not_killed():
    """A program that ends after SIGTERM gets no SIGKILL, and no timer is left behind."""
    client, process, reactor = run({"kill_timeout_seconds": 3})
    client.disconnect()
    process.exit(143)
    reactor.advance(10)
    assert process.signals == ["TERM"]
    assert [call for call in reactor.getDelayedCalls() if call.active() and "signal_program" in repr(call.func)] == []


def test_output_after_the_peer_left_is_discarded():
    """What the program writes after the connection closed goes nowhere (and breaks nothing)."""
    client, process, _ = run()
    client.close()
    process.stdout(b"late\n")
    process.exit(0)
    assert client.received() == []


def test_program_that_cannot_start_closes_with_1011_and_frees_its_slot():
    """If the program cannot be spawned the connection closes with 1011 and the cap is not used up."""
    server, reactor = serve({"max_processes": 1})
    reactor.fail_with = OSError("no such file")
    with capturedLogs():
        first = server.connect("/run")
    assert first.close_code == 1011
    reactor.fail_with = None
    assert server.connect("/run").accepted


def test_daemon_shutdown_ends_the_programs_still_running():
    """At shutdown the daemon waits while programs still running get SIGTERM, then SIGKILL after the timeout."""
    server, reactor, services = serve_with_services({"kill_timeout_seconds": 2})
    server.connect("/run")
    server.connect("/run")
    reactor.processes[1].exit(0)
    waiting = services.stopService()
    assert [process.signals for process in reactor.processes] == [["TERM"], []]
    reactor.advance(1.9)
    assert not waiting.called
    reactor.advance(0.1)
    assert reactor.processes[0].signals == ["TERM", "KILL"]
    assert waiting.called


def test_shutdown_joins_the_service_tree_not_a_reactor_trigger():
    """The handler takes part in shutdown as a child of the daemon's services, once it runs a program."""
    server, reactor, services = serve_with_services()
    assert list(services) == []
    server.connect("/run")
    server.connect("/run")
    (child,) = services
    assert child is server_factory(server).shutdown
    assert reactor.triggers == {}


def test_shutdown_waits_only_until_the_programs_ended():
    """Programs that end on SIGTERM let the shutdown go on at once, and get no SIGKILL."""
    server, reactor, services = serve_with_services({"kill_timeout_seconds": 2})
    server.connect("/run")
    server.connect("/run")
    waiting = services.stopService()
    reactor.processes[0].exit(143)
    assert not waiting.called
    reactor.processes[1].exit(143)
    assert waiting.called
    reactor.advance(5)
    assert [process.signals for process in reactor.processes] == [["TERM"], ["TERM"]]


def test_connections_closing_after_the_shutdown_wait_ended_break_nothing():
    """Slots freed after the shutdown wait is over (a connection whose program never ran) do not fire it again."""
    server, reactor, services = serve_with_services({"max_processes": 3})
    first, second = server.connect("/run"), server.connect("/run")
    waiting = services.stopService()
    reactor.processes[0].exit(143)
    reactor.processes[1].exit(143)
    assert waiting.called
    first.close()
    second.close()
    reactor.fail_with = OSError("fork failed")
    with capturedLogs() as events:
        third = server.connect("/run")
    assert third.close_code == 1011
    failures = [event["log_failure"] for event in events if "log_failure" in event]
    assert [failure.type for failure in failures] == [OSError]


def test_shutdown_with_no_program_running_does_not_wait():
    """With no program left, stopping the handler's service gives nothing to wait for."""
    server, reactor, services = serve_with_services()
    server.connect("/run")
    reactor.processes[0].exit(0)
    (child,) = services
    assert child.stopService() is None
    assert services.stopService().called


def server_factory(server: MemoryServer) -> ProcessFactory:
    """The process factory a MemoryServer serves at /run."""
    factory: ProcessFactory = server.clients[0].handler.factory
    return factory


# --- the cap ----------------------------------------------------------------------------------------------------


def test_upgrade_over_max_processes_gets_503_with_retry_after():
    """With max_processes programs running, one more upgrade gets 503 and Retry-After before any 101."""
    server, reactor = serve({"max_processes": 2})
    first, second = server.connect("/run"), server.connect("/run")
    third = server.connect("/run")
    assert (first.status, second.status, third.status) == (101, 101, 503)
    assert third.response is not None and third.response.get("retry-after") == "5"
    assert len(reactor.processes) == 2


def test_slot_is_freed_when_the_program_ends_not_when_the_peer_leaves():
    """The cap counts running programs: a closed connection whose program still runs keeps its slot."""
    server, reactor = serve({"max_processes": 1})
    first = server.connect("/run")
    first.close()
    assert server.connect("/run").status == 503
    reactor.processes[0].exit(143)
    assert server.connect("/run").status == 101


# --- backpressure -------------------------------------------------------------------------------------------------


def test_slow_peer_pauses_reading_the_programs_output():
    """A peer that does not read pauses reading stdout (the program then blocks); reading again resumes it."""
    server, reactor = serve(limits=Limits(write_buffer_high_bytes=1024))
    client = server.connect("/run")
    process = reactor.processes[0]
    client.pause_reading()
    for _ in range(30):
        process.stdout(b"y" * 100 + b"\n")
    assert not process.reading
    client.resume_reading()
    assert process.reading
    assert len(client.received()) == 30


def test_full_stdin_pauses_reading_the_peer():
    """When the stdin pipe is full the peer's messages are no longer read, and arrive in order once it drains."""
    client, process, _ = run()
    process.producer.pauseProducing()
    client.send_text("one")
    client.send_text("two")
    assert process.stdin == []
    assert client.transport.producerState == "paused"
    process.producer.resumeProducing()
    client.received()
    assert process.stdin == [b"one\n", b"two\n"]
