"""A supervisor on a memory reactor: spawned workers are recorded, their words and exits are played."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure

from tests.test_lifecycle import Clock
from tests.test_systemd import Recorder
from wsdaemon.config import ListenerConfig, parse_config
from wsdaemon.systemd import Notifier
from wsdaemon.workers.channel import TO_SUPERVISOR_FD, Hello, MessageDecoder, MessageKind, encode
from wsdaemon.workers.sockets import HeldSocket
from wsdaemon.workers.supervisor import Supervisor, WorkerProcess

COMMAND = ("/usr/bin/python3", "-m", "twisted", "wsdaemon", "--config", "/etc/wsdaemon/wsdaemon.toml")


@dataclass
class FakeProcess:
    """Stands in for an IProcessTransport: records signals and what was written to the child."""

    pid: int
    signals: list[str] = field(default_factory=list)
    written: list[tuple[int, bytes]] = field(default_factory=list)

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def hello(self) -> Hello:
        """The hello the supervisor wrote on the worker's fd 0."""
        ((kind, body),) = MessageDecoder().feed(b"".join(data for fd, data in self.written if fd == 0))
        assert kind is MessageKind.HELLO
        return Hello.decode(body)


@dataclass
class FakePort:
    """A held listening port: only closed."""

    closed: bool = False

    def stopListening(self) -> None:
        self.closed = True


@dataclass
class Spawned:
    """One spawnProcess call."""

    protocol: WorkerProcess
    args: list[str]
    env: dict[str, str]
    child_fds: dict[int, Any]
    process: FakeProcess
    at: float

    def say(self, *fields: str) -> None:
        """The worker sends sd_notify words on its channel."""
        self.protocol.childDataReceived(TO_SUPERVISOR_FD, encode(MessageKind.NOTIFY, "\n".join(fields).encode()))

    def ready(self, connections: int = 0) -> None:
        self.say("READY=1", f"STATUS={connections} connections (0 WebSocket) on 1 listeners")

    def dies(self, code: int | None = 1, signal_number: int | None = None) -> None:
        """The process ends (exit status ``code``, or killed by ``signal_number``)."""
        if signal_number is None and code == 0:
            reason: Exception = ProcessDone(0)
        else:
            reason = ProcessTerminated(exitCode=code if signal_number is None else None, signal=signal_number)
        self.protocol.processEnded(Failure(reason))


class Harness:
    """A Supervisor of ``count`` workers on a Clock, with recorded spawns, signals and sd_notify."""

    def __init__(self, text: str = "", count: int = 2, environ: dict[str, str] | None = None) -> None:
        self.clock = Clock()
        self.sent = Recorder()
        self.signals: dict[int, Callable[..., Any]] = {}
        self.spawned: list[Spawned] = []
        self.config = parse_config(text, "/etc/wsdaemon/wsdaemon.toml")
        self.port = FakePort()
        self.held = [HeldSocket(ListenerConfig("tcp:8080"), self.port, fd=17)]  # type: ignore[arg-type]
        self.supervisor = Supervisor(
            self.clock,
            self.config,
            count,
            COMMAND,
            lambda: succeed(list(self.held)),
            notifier=Notifier("@notify", self.sent),
            spawn=self._spawn,
            environ=environ or {"PATH": "/usr/bin", "NOTIFY_SOCKET": "@notify", "LISTEN_FDS": "1"},
            install_signal=lambda number, handler: self.signals.__setitem__(number, handler),
        )

    def _spawn(
        self, protocol: WorkerProcess, executable: str, args: list[str], env: dict[str, str], childFDs: Any
    ) -> FakeProcess:
        process = FakeProcess(1000 + len(self.spawned))
        self.spawned.append(Spawned(protocol, args, env, childFDs, process, self.clock.seconds()))
        return process

    def start(self) -> Harness:
        """Start the service and the reactor (the listeners "open" at once)."""
        self.supervisor.startService()
        self.clock.run()
        return self

    def started_ready(self) -> Harness:
        """Started, and every worker said READY=1."""
        self.start()
        for spawned in self.spawned:
            spawned.ready()
        return self

    def current(self, index: int) -> Spawned:
        """The latest process spawned for worker ``index``."""
        return [spawned for spawned in self.spawned if spawned.args[-1] == str(index)][-1]

    def notified(self, field_name: str) -> list[list[str]]:
        """The sd_notify messages that start with ``field_name``."""
        return [lines for lines, _ in self.sent.sent if lines[0] == field_name]

    def signal(self, number: int) -> None:
        """Deliver a signal to the main process."""
        self.signals[number](number, None)

    @staticmethod
    def hup() -> int:
        return signal.SIGHUP
