"""The HTTP side of a listener: the resource tree, the Site and its limits.

One :class:`DaemonSite` serves every listener: the demo page, ``/healthz``
and one :class:`WebSocketResource` per configured endpoint, all on the same
port. It is always wrapped in a :class:`SwitchingFactory` (see
:func:`build_factory`), which is what lets a request become a WebSocket.

In the daemon, the tree and the limits are the running :class:`Runtime`'s, read
from its :class:`RuntimeSlot` for each request and each new connection
(:func:`build_listening_factory`), so a reload swaps them without touching the Site.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.web import pages
from twisted.web.http import combinedLogFormatter
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.admission import Admission, TrustedNetworks
from wsdaemon.auth import NO_AUTHENTICATION
from wsdaemon.auth.tokens import without_token
from wsdaemon.broker import IBroker, LinkState
from wsdaemon.config import METRICS_PATH, Config, EndpointConfig
from wsdaemon.core import EndpointPolicy, Limits
from wsdaemon.interfaces import IAuthenticator, WebSocketServerFactory
from wsdaemon.runtime import Runtime, RuntimeSlot
from wsdaemon.stats import DaemonStats
from wsdaemon.web.api import ApiAccess, PresenceResource, PublishResource, channel_history
from wsdaemon.web.channel import DaemonChannel
from wsdaemon.web.request import DaemonRequest
from wsdaemon.web.resource import WebSocketResource

if TYPE_CHECKING:
    from wsdaemon.web.mounts import ConfinedFile  # twisted.web.static only when used (DESIGN §4)

#: The demo page talks only to its own origin; nothing else may load or run.
_DEMO_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:"


class StaticBytes(Resource):
    """A fixed body with a fixed content type (the demo page, its script, /healthz)."""

    isLeaf = True

    def __init__(self, body: bytes, content_type: str, extra_headers: Mapping[str, str] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.body = body
        self.content_type = content_type
        self.extra_headers = dict(extra_headers or {})

    def render_GET(self, request: Request) -> bytes:
        """Serve the body (HEAD is answered by twisted.web from this too); paths below it are 404."""
        if any(request.postpath or ()):
            return pages.notFound("Not Found", "No such resource.").render(request)  # type: ignore[no-any-return]
        request.setHeader("Content-Type", self.content_type)
        request.setHeader("X-Content-Type-Options", "nosniff")
        for name, value in self.extra_headers.items():
            request.setHeader(name, value)
        return self.body


class PathNode(Resource):
    """A path segment that holds children; anything else under it is 404, or a static mount's file."""

    #: A ``[[static]]`` directory mounted here: it answers for this path and unknown children.
    fallback: ConfinedFile | None = None

    def getChild(self, path: bytes, request: Request) -> IResource:
        """Unknown children are 404, not twisted.web's default page (or files of a mount)."""
        if self.fallback is not None:
            return self.fallback.getChild(path, request)
        return pages.notFound("Not Found", "No such resource.")

    def render(self, request: Request) -> bytes | int:
        """The segment itself is not a page either (unless a directory is mounted here)."""
        if self.fallback is not None:
            return self.fallback.render(request)  # type: ignore[no-any-return]
        return pages.notFound("Not Found", "No such resource.").render(request)  # type: ignore[no-any-return]


class _AsLogged:
    """A request as the access log sees it: itself, but with any token in its URL replaced."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.uri = without_token(request.uri)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def access_log_line(timestamp: str, request: Request) -> str:
    """twisted.web's combined access-log line, without the credential a URL may carry (``?token=``).

    A refused upgrade (401) is logged by twisted.web like any answered request, URL included.
    """
    return combinedLogFormatter(timestamp, _AsLogged(request))  # type: ignore[no-any-return]


class DaemonSite(Site):
    """A Site with wsdaemon's request class and HTTP limits, HTTP/1.1 only."""

    requestFactory = DaemonRequest
    # No h2: a WebSocket upgrade needs HTTP/1.1. Twisted types HTTPFactory for its HTTP/1.1-or-h2 proxy only.
    protocol = DaemonChannel  # type: ignore[assignment]

    def __init__(
        self, resource: IResource, config: Config, reactor: IReactorTime, *, runtime: RuntimeSlot | None = None
    ) -> None:
        """Serve ``resource`` with ``config``'s limits, or, given ``runtime``, whatever runs in that slot.

        Args:
            resource: the root resource (the daemon passes a :class:`RunningRoot`).
            config: whose limits apply when no ``runtime`` is given.
            reactor: the reactor requests are timed with.
            runtime: the slot whose running Runtime's limits apply to each new channel.
        """
        # The wrapper's handshake deadline replaces twisted.web's idle timeout.
        super().__init__(resource, reactor=reactor, timeout=None, logFormatter=access_log_line)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.reactor: IReactorTime = reactor
        self.runtime = runtime if runtime is not None else RuntimeSlot(Runtime(config, {}, resource))
        self.displayTracebacks = False

    @property
    def limits(self) -> Limits:
        """The limits of the running Runtime (read when each connection's channel is built)."""
        return self.runtime.current.limits

    def buildProtocol(self, addr: Any) -> DaemonChannel:  # type: ignore[override]  # see protocol
        """A channel with this daemon's head and body limits."""
        channel: DaemonChannel = super().buildProtocol(addr)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        channel.configure(self.limits, self.reactor)
        return channel


def _static(name: str) -> bytes:
    return resources.files("wsdaemon.web").joinpath("static", name).read_bytes()


def _mount(root: Resource, path: str, leaf: IResource) -> None:
    """Put ``leaf`` at ``path`` (e.g. "/chat/room"), creating 404-ing parents."""
    segments = path.strip("/").split("/")
    node = root
    for segment in segments[:-1]:
        child = node.children.get(segment.encode())
        if not isinstance(child, PathNode):
            child = PathNode()
            node.putChild(segment.encode(), child)
        node = child
    node.putChild(segments[-1].encode(), leaf)


def _path_node(root: PathNode, path: str) -> PathNode:
    """The :class:`PathNode` at ``path``, creating it and its parents ("/" is the root)."""
    node = root
    for segment in filter(None, path.split("/")):
        child = node.children.get(segment.encode())
        if not isinstance(child, PathNode):
            child = PathNode()
            node.putChild(segment.encode(), child)
        node = child
    return node


class Health(StaticBytes):
    """``/healthz``: 200, or 503 while a broker the config marks ``required`` is down."""

    def __init__(self, broker: IBroker | None, required: bool) -> None:
        super().__init__(b"ok\n", "text/plain; charset=utf-8", {"Cache-Control": "no-store"})
        self.broker = broker if required else None

    def render_GET(self, request: Request) -> bytes:
        """ok, unless the required broker is down."""
        body = super().render_GET(request)
        if self.broker is not None and self.broker.state is LinkState.DOWN and request.code == 200:
            request.setResponseCode(503)
            return b"broker down\n"
        return body


def _mount_api(
    root: Resource,
    config: Config,
    broker: IBroker,
    access: ApiAccess,
    factories: Mapping[str, WebSocketServerFactory[Any]],
) -> None:
    if config.api is not None:
        _mount(root, config.api.publish_path, PublishResource(broker, access, channel_history(factories)))
        _mount(root, config.api.presence_path, PresenceResource(broker, access))


def build_root(
    config: Config,
    factories: Mapping[str, WebSocketServerFactory[Any]],
    reactor: IReactorTime,
    *,
    admission: Admission,
    authenticators: Mapping[str, IAuthenticator] | None = None,
    broker: IBroker | None = None,
    api: ApiAccess | None = None,
    stats: DaemonStats | None = None,
    metrics: IResource | None = None,
) -> Resource:
    """The resource tree: demo page, /healthz, /metrics, the API and one WebSocket endpoint per config entry.

    Every endpoint asks ``admission``, the one its listeners' ``SwitchingFactory``
    counts connections with (a rebuilt tree on reload gets the running one),
    authenticates with its entry in ``authenticators`` (by path) and counts into
    its entry in ``stats`` (the daemon's, kept across reloads). ``metrics``, the
    ``/metrics`` resource, is mounted when given.

    Raises:
        ValueError: an endpoint configured with an authenticator has none in
            ``authenticators`` (never fall back to letting everyone in).
    """
    root = PathNode()
    if config.demo_page:
        csp = {"Content-Security-Policy": _DEMO_CSP}
        root.putChild(b"", StaticBytes(_static("index.html"), "text/html; charset=utf-8", csp))
        static = PathNode()
        static.putChild(b"demo.js", StaticBytes(_static("demo.js"), "text/javascript; charset=utf-8"))
        root.putChild(b"static", static)
    root.putChild(b"healthz", Health(broker, config.broker is not None and config.broker.required))
    if metrics is not None:
        _mount(root, METRICS_PATH, metrics)
    if broker is not None and api is not None:
        _mount_api(root, config, broker, api, factories)
    for endpoint in config.endpoints:
        resource = _endpoint_resource(endpoint, factories[endpoint.path], reactor, admission, authenticators, stats)
        _mount(root, endpoint.path, resource)
    if config.static:
        from wsdaemon.web.mounts import static_directory  # twisted.web.static only when used (DESIGN §4)

        for mount in config.static:
            _path_node(root, mount.path).fallback = static_directory(mount.directory)
    return root


def _endpoint_resource(
    endpoint: EndpointConfig,
    factory: WebSocketServerFactory[Any],
    reactor: IReactorTime,
    admission: Admission,
    authenticators: Mapping[str, IAuthenticator] | None,
    stats: DaemonStats | None,
) -> WebSocketResource:
    """One endpoint's WebSocket resource: its policy, authenticator, limits, message rate and counters."""
    # A factory may offer subprotocols (tcp: "binary", for noVNC) when the endpoint lists none.
    subprotocols = endpoint.subprotocols or tuple(getattr(factory, "defaultSubprotocols", ()))
    policy = EndpointPolicy(
        subprotocols=subprotocols, allowed_origins=endpoint.allowed_origins, deflate=endpoint.deflate
    )
    return WebSocketResource(
        factory,
        reactor,
        admission=admission,
        authenticator=_authenticator(endpoint, authenticators or {}),
        auth_timeout_seconds=endpoint.auth.timeout_seconds,
        close_on_expiry=endpoint.auth.close_on_expiry,
        policy=policy,
        limits=endpoint.limits,
        path=endpoint.path,
        message_rate=endpoint.message_rate,
        stats=stats.endpoint(endpoint.path) if stats is not None else None,
    )


def _authenticator(endpoint: EndpointConfig, authenticators: Mapping[str, IAuthenticator]) -> IAuthenticator:
    """The endpoint's authenticator; only ``type = "none"`` may go without one (fail closed)."""
    found = authenticators.get(endpoint.path)
    if found is not None:
        return found
    if endpoint.auth.type != "none":
        raise ValueError(f"endpoint {endpoint.path} needs its {endpoint.auth.type!r} authenticator built")
    return NO_AUTHENTICATION


class RunningRoot(Resource):
    """The Site's root: the running Runtime's tree, looked up afresh for each request.

    A request is routed from here into one Runtime's tree and stays in it, so a reload
    in the middle of a request cannot mix two trees.
    """

    def __init__(self, runtime: RuntimeSlot) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.runtime = runtime

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        """The child of the running tree's root (twisted.web routes every request through here)."""
        child: IResource = self.runtime.current.root.getChildWithDefault(path, request)
        return child

    def render(self, request: Request) -> bytes | int:
        """The running tree's root itself (a request with no path segment at all)."""
        return self.runtime.current.root.render(request)  # type: ignore[no-any-return]


class DaemonFactory(SwitchingFactory):
    """The listening factory of the daemon: its connection limits are the running Runtime's."""

    def __init__(self, site: DaemonSite, reactor: IReactorTime, admission: Admission | None = None) -> None:
        super().__init__(site, site.limits, reactor, admission)
        self.runtime = site.runtime

    @property
    def limits(self) -> Limits:
        """``max_connections`` and the handshake deadline of the running Runtime, for each new connection."""
        return self.runtime.current.limits

    @property
    def trusted_networks(self) -> TrustedNetworks:
        """``[proxy] trusted_networks`` of the running Runtime, for each request."""
        return self.runtime.current.config.proxy.trusted_networks


def build_runtime(
    config: Config,
    factories: Mapping[str, WebSocketServerFactory[Any]],
    reactor: IReactorTime,
    *,
    admission: Admission,
    authenticators: Mapping[str, IAuthenticator] | None = None,
    broker: IBroker | None = None,
    api: ApiAccess | None = None,
) -> Runtime:
    """The :class:`Runtime` of ``config`` with these endpoint factories and authenticators (by path).

    Its tree is built on ``reactor``, asking ``admission``.
    """
    guards = dict(authenticators or {})
    root = build_root(config, factories, reactor, admission=admission, authenticators=guards, broker=broker, api=api)
    return Runtime(config, factories, root, guards)


def build_listening_factory(runtime: RuntimeSlot, reactor: IReactorTime, admission: Admission) -> DaemonFactory:
    """The protocol factory every listener serves: the Site, wrapped for the WebSocket switch, reading ``runtime``.

    ``admission`` must be the one the running tree's endpoints ask (it outlives every
    Runtime: the counts of open connections do not change on reload).
    """
    site = DaemonSite(RunningRoot(runtime), runtime.current.config, reactor, runtime=runtime)
    return DaemonFactory(site, reactor, admission)


def build_factory(
    config: Config,
    factories: Mapping[str, WebSocketServerFactory[Any]],
    reactor: IReactorTime,
    admission: Admission | None = None,
    authenticators: Mapping[str, IAuthenticator] | None = None,
    broker: IBroker | None = None,
    api: ApiAccess | None = None,
) -> SwitchingFactory:
    """A listening factory serving ``config`` with these endpoint factories, for good (no reload).

    For tests, ``--check-config`` and embedding: the daemon itself builds its factory on a
    :class:`RuntimeSlot` (:func:`build_listening_factory`). One ``admission`` (a new one
    unless given) counts the connections and resolves the clients for the wrapper and
    every endpoint alike.
    """
    admission = admission if admission is not None else Admission()
    runtime = RuntimeSlot(
        build_runtime(
            config, factories, reactor, admission=admission, authenticators=authenticators, broker=broker, api=api
        )
    )
    return build_listening_factory(runtime, reactor, admission)
