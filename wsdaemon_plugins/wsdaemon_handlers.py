"""Built-in wsdaemon handlers, as lazy plugin descriptors (nothing heavy is imported here)."""

from wsdaemon.hub.limits import HubLimits, hub_limit_help, hub_limit_ranges
from wsdaemon.plugins import HandlerPlugin


def _number(value: float) -> str:
    """A bound as written in a config file: 300, 0.5, 1073741824 (never 1.07374e+09)."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _hub_options() -> dict[str, str]:
    """The broadcast options that are history bounds, described from HubLimits itself (one source)."""
    defaults = HubLimits()
    described = {}
    for name, text in hub_limit_help().items():
        low, high = hub_limit_ranges()[name]
        default = getattr(defaults, name)
        kind = "integer" if isinstance(default, int) else "number"
        described[name] = f"{kind} {_number(low)}-{_number(high)} (default {_number(default)}): {text}"
    return described


echo = HandlerPlugin(
    name="echo",
    module="wsdaemon.handlers.echo",
    description="sends every text and binary message back to its sender unchanged",
)

broadcast = HandlerPlugin(
    name="broadcast",
    module="wsdaemon.handlers.broadcast",
    description="publish/subscribe: every message a member sends goes to every member of its channel, in order",
    options={
        "channel_from_path": "true or false (default false): the channel is the URL path after the endpoint "
        '(/chat/room1 joins "/chat/room1") instead of the endpoint itself',
        "deliver_to_sender": "true or false (default true): a member also gets its own messages",
        "queue_max_messages": "integer 1-1000000 (default 1000): messages kept for a member that is not keeping up",
        "queue_max_bytes": "integer 1024-1073741824 (default 1048576): bytes kept for a member that is not keeping up",
        "overflow": '"close" (default), "drop-oldest" or "latest" (keep only the newest message): '
        "what happens to a member whose queue is full",
        "overflow_close_code": '1008 (default) or 1013: the close code of overflow = "close"',
        "channels_claim": "string (default none): a claim of the verified identity (see [endpoints.auth]) "
        'listing the channel paths it may join, exact ("/chat/a") or by prefix ("/chat/*"); others get 403',
        "envelope": '"json" (default none): every message goes out as a JSON envelope with its channel, epoch and '
        "offset, with notices, and clients may reconnect with ?since=OFFSET&epoch=EPOCH (docs/recovery.md)",
        **_hub_options(),
    },
)

process = HandlerPlugin(
    name="process",
    module="wsdaemon.handlers.process",
    description="runs a program per connection (like websocketd): stdout lines become messages, messages become stdin lines",
    options={
        "command": 'list of strings (required): the program and its arguments, e.g. ["/usr/bin/cat"]; '
        "the client never chooses them",
        "mode": '"text" (default: one message per line) or "binary" (stdout in binary messages, messages to stdin as they are)',
        "max_processes": "integer 1-100000 (default 64): programs running at once on this endpoint; more upgrades get 503",
        "kill_timeout_seconds": "number 0.1-3600 (default 5): after the connection closes, SIGTERM, then SIGKILL this much later",
        "max_line_bytes": "integer 1-1073741824 (default 1048576): longest stdout line in text mode; longer closes with 1011",
        "working_directory": "absolute path (default: the daemon's): where the program runs",
        "environment": "table of strings (default empty): extra environment variables, besides PATH and the CGI ones",
    },
)

tcp = HandlerPlugin(
    name="tcp",
    module="wsdaemon.handlers.tcp",
    description="relays each connection to a TCP backend as binary messages (like websockify; accepts the 'binary' subprotocol)",
    options={
        "host": 'string (required): the backend\'s host name or address, e.g. "127.0.0.1"',
        "port": "integer 1-65535 (required): the backend's port",
        "connect_timeout_seconds": "number 0.1-3600 (default 10): how long to try to connect before closing with 1011",
    },
)
