"""The HTTP API for backends: ``POST /api/publish`` and ``GET /api/presence`` (twisted.web Resources).

Rules for this file:

* Off unless ``[api]`` is configured; on the listeners ``[api] listeners`` names
  (all by default); elsewhere the paths answer 404 as if they did not exist.
* Every request carries ``Authorization: Bearer TOKEN``; the token (from
  ``[api] token_file``) is compared in constant time. Wrong or missing: 401.
* JSON in, JSON out. Every refusal is ``{"error": "..."}`` with its status, and
  the text names the field at fault; no traceback ever goes on the wire.
* A publish body is ``{"channel": "/chat/room1", "data": "text"}`` or
  ``{"channel": ..., "b64": "..."}`` (binary, standard base64). The message is
  bounded by ``max_message_bytes`` (413), checked on ``Content-Length`` before
  the body is read, and on the decoded message.
* A publish to a channel of an endpoint with history or an envelope is
  positioned, with that endpoint's bounds (:func:`channel_history`): the answer
  carries the message's ``epoch`` and ``offset``, and history that cannot be
  written now (the broker is down) is a 503, never a message without an offset.
"""

from __future__ import annotations

import binascii
import hmac
import json
from base64 import b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from wsdaemon.broker import HistoryUnavailable, IBroker, Presence, PresenceUnavailable, Published, PublishRefused
from wsdaemon.broker.names import channel_problem
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.hub import HubLimits

_log = Logger(namespace="wsdaemon.api")
#: The JSON around a base64 message: the body limit is its encoded size plus this.
BODY_OVERHEAD_BYTES = 64 * 1024
_PUBLISH_FIELDS = ("channel", "data", "b64")


class ApiError(Exception):
    """A refused API request: ``status`` and a message that is safe to send."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class ApiAccess:
    """Who may use the API: the bearer token, and the listeners it is served on."""

    token: bytes
    max_message_bytes: int
    on_allowed_listener: Callable[[Request], bool] = lambda request: True


def read_token(path: str) -> bytes:
    """The token in ``[api] token_file``: its first line, at least 16 characters.

    Raises:
        OSError: the file cannot be read.
        ValueError: the token is shorter than 16 characters.
    """
    with open(path, "rb") as stream:
        token = stream.readline().strip()
    if len(token) < 16:
        raise ValueError(f"a token of at least 16 characters on the first line, got {len(token)}")
    return token


def answer(request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    """Set the status and JSON headers; the encoded body to return."""
    request.setResponseCode(status)
    request.setHeader("Content-Type", "application/json")
    request.setHeader("Cache-Control", "no-store")
    request.setHeader("X-Content-Type-Options", "nosniff")
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


class ApiResource(Resource):
    """One API path: access checks shared by publish and presence; every method else is a JSON 405."""

    isLeaf = True
    method = b"GET"

    def __init__(self, broker: IBroker, access: ApiAccess) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.broker = broker
        self.access = access

    def render(self, request: Request) -> bytes | int:
        """Check the listener, the path, the method and the token, then serve (or refuse in JSON)."""
        try:
            if not self.access.on_allowed_listener(request) or any(request.postpath or ()):
                raise ApiError(404, "no such resource")
            if request.method != self.method:
                raise ApiError(405, f"use {self.method.decode()}", {"Allow": self.method.decode()})
            self._authorize(request)
            return self.serve(request)
        except ApiError as error:
            return answer(request, error.status, {"error": error.message}, error.headers)

    def _authorize(self, request: Request) -> None:
        header = request.getHeader("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.access.token):
            raise ApiError(401, "a valid Authorization: Bearer token is required", {"WWW-Authenticate": "Bearer"})

    def serve(self, request: Request) -> bytes | int:
        """Answer an authorized request."""
        raise NotImplementedError

    def reply_later(self, request: Request, result: Deferred[Any], body: Callable[[Any], dict[str, Any]]) -> int:
        """Finish ``request`` when ``result`` fires: 200 with ``body(result)``, or the failure's JSON answer."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def done(value: Any) -> None:
            if not gone:
                request.write(answer(request, 200, body(value)))
                request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(PublishRefused, PresenceUnavailable, HistoryUnavailable):
                status, text = 503, str(failure.value)
            else:
                _log.failure("API request {path} failed", failure, path=request.path)
                status, text = 500, "internal error (see the daemon's log)"
            if not gone:
                request.write(answer(request, status, {"error": text}))
                request.finish()

        result.addCallbacks(done, failed)
        return NOT_DONE_YET


class PublishResource(ApiResource):
    """``POST`` a message to a channel's members everywhere."""

    method = b"POST"

    def __init__(
        self, broker: IBroker, access: ApiAccess, history: Callable[[str], HubLimits | None] = lambda channel: None
    ) -> None:
        super().__init__(broker, access)
        self.history = history

    def serve(self, request: Request) -> bytes | int:
        """Validate the body, publish (positioned where the channel's endpoint keeps history), and say what was published."""
        channel, message = self.parse(request)
        result = self.broker.publish(channel, message, local_fallback=False, history=self.history(channel))
        return self.reply_later(request, result, published_json)

    def parse(self, request: Request) -> tuple[str, SharedMessage]:
        """The channel and message of a publish request.

        Raises:
            ApiError: 400 naming the field, or 413 for a message over ``max_message_bytes``.
        """
        limit = self.access.max_message_bytes
        body_limit = limit * 4 // 3 + 4 + BODY_OVERHEAD_BYTES
        length = request.getHeader("content-length")
        if length is not None and length.isdigit() and int(length) > body_limit:
            raise ApiError(413, f"the body is over {body_limit} bytes (max_message_bytes = {limit})")
        raw = request.content.read(body_limit + 1) if request.content is not None else b""
        if len(raw) > body_limit:
            raise ApiError(413, f"the body is over {body_limit} bytes (max_message_bytes = {limit})")
        document = _json_object(raw)
        unknown = sorted(set(document) - set(_PUBLISH_FIELDS))
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown field (expected channel and one of data, b64)")
        channel = _channel(document.get("channel"))
        message = _message(document)
        if len(message.payload) > limit:
            raise ApiError(413, f"the message is {len(message.payload)} bytes, over max_message_bytes ({limit})")
        return channel, message


class PresenceResource(ApiResource):
    """``GET ?channel=/chat/room1``: the number of members everywhere."""

    def serve(self, request: Request) -> bytes | int:
        """Count the channel's members."""
        values = (request.args or {}).get(b"channel", [])
        if len(values) != 1:
            raise ApiError(400, "channel: give exactly one ?channel=/path query parameter")
        try:
            name = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "channel: must be UTF-8") from None
        return self.reply_later(request, self.broker.presence(_channel(name)), presence_json)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "body: not valid JSON (UTF-8)") from None
    if not isinstance(document, dict):
        raise ApiError(400, 'body: expected a JSON object such as {"channel": "/chat/room1", "data": "hello"}')
    return document


def _channel(value: Any) -> str:
    if value is None:
        raise ApiError(400, "channel: missing")
    problem = channel_problem(value)
    if problem is not None:
        raise ApiError(400, f"channel: {problem}")
    return str(value)


def _message(document: dict[str, Any]) -> SharedMessage:
    has_data, has_b64 = "data" in document, "b64" in document
    if has_data == has_b64:
        raise ApiError(400, "data: give exactly one of data (a text message) or b64 (a binary message)")
    if has_data:
        data = document["data"]
        if not isinstance(data, str):
            raise ApiError(400, f"data: must be a string, got {_json_type(data)}")
        try:
            return SharedMessage(Opcode.TEXT, data.encode("utf-8"))
        except UnicodeEncodeError:
            raise ApiError(400, "data: must be valid Unicode (no lone surrogates)") from None
    encoded = document["b64"]
    if not isinstance(encoded, str):
        raise ApiError(400, f"b64: must be a string, got {_json_type(encoded)}")
    try:
        return SharedMessage(Opcode.BINARY, b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise ApiError(400, "b64: not valid base64 (standard alphabet, with padding)") from None


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def published_json(result: Published) -> dict[str, Any]:
    """The 200 answer of a publish; a positioned one also says the message's ``epoch`` and ``offset``."""
    body: dict[str, Any] = {
        "channel": result.channel,
        "bytes": result.size_bytes,
        "binary": result.binary,
        "route": result.route.value,
    }
    if result.epoch is not None:
        body["epoch"], body["offset"] = result.epoch, result.offset
    return body


def channel_history(factories: Mapping[str, Any]) -> Callable[[str], HubLimits | None]:
    """How the publish API finds a channel's history bounds: from the endpoint that serves the channel.

    An endpoint's factory that has channels (``broadcast``) says which it serves
    (``serves_channel``) and with what bounds (``history_limits``). Endpoint
    paths never nest (the config refuses it), so at most one serves a channel;
    a channel no endpoint serves has no history.
    """
    owners = [factory for factory in factories.values() if callable(getattr(factory, "serves_channel", None))]

    def history(channel: str) -> HubLimits | None:
        for factory in owners:
            if factory.serves_channel(channel):
                limits = factory.history_limits
                return limits if isinstance(limits, HubLimits) else None
        return None

    return history


def presence_json(result: Presence) -> dict[str, Any]:
    """The 200 answer of a presence query."""
    return {"channel": result.channel, "members": result.members, "complete": result.complete}
