"""Every failure the hub knows, each carrying its answer on the wire.

The hub judges input from three kinds of strangers: a client's recovery query
(at the WebSocket handshake), a backend's channel name (the publish API, the
config) and, on the client side, the server's envelopes. Each failure is a
``ValueError`` subclass (a bad value, as ``int("x")`` is) whose message comes
from our own strings, so it is safe to send back; the server-side ones carry
the HTTP ``status`` they imply as a class attribute (the h2 habit of DESIGN
§2.4), so the code that answers never picks a status itself.
"""

from __future__ import annotations

from typing import ClassVar


class InvalidChannel(ValueError):
    """A channel name breaks the rules of :mod:`wsdaemon.hub.channels`.

    Answered 400 by the publish API (``{"error": "invalid channel: ..."}``) and
    reported at startup when it comes from the config.
    """

    status: ClassVar[int] = 400


class InvalidRecoveryQuery(ValueError):
    """The ``since``/``epoch`` query of a connect request is malformed.

    Only *syntax* is judged here (not a number, negative, too large, repeated,
    a malformed epoch, ``epoch`` without ``since``). A well-formed query that
    cannot be honoured (a foreign epoch, an offset out of history) is not an
    error: the client is told "not recovered" and goes live.

    Attributes:
        field: the query parameter at fault (``"since"`` or ``"epoch"``).
    """

    status: ClassVar[int] = 400

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class InvalidEnvelope(ValueError):
    """A message received on an ``envelope = "json"`` endpoint is not a valid envelope.

    Raised to a *client* parsing what a server sent (a server bug or a
    different protocol): the client should log it and reconnect.
    """


class UnknownEnvelope(InvalidEnvelope):
    """A well-formed envelope of a ``type`` this version does not know.

    A newer server may add notice types; a client should ignore these rather
    than fail (forward compatibility), which is why this is its own class.

    Attributes:
        type: the unknown ``type`` value.
    """

    def __init__(self, type: str) -> None:
        super().__init__(f"unknown envelope type {type!r}")
        self.type = type
