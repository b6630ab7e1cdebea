"""The program's environment: the upgrade request as CGI variables (RFC 3875 §4.1), like websocketd.

Rules for this file:

* What the client asked for reaches the program only as environment variables,
  never as arguments: the argv comes from the config alone.
* Nothing of the daemon's own environment is passed but ``PATH`` and the
  endpoint's ``environment`` table (the ``base`` given here).
* Every request header ``Name-X`` becomes ``HTTP_NAME_X``, except ``Proxy`` (the
  "httpoxy" hole: ``HTTP_PROXY`` would steer the program's HTTP clients).
* A value holding a NUL cannot be passed to a program, so it is left out.
* Who the client is comes from :func:`peer_address` (the admission's client address),
  and from nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.web.server import Request

from wsdaemon import __version__
from wsdaemon.admission import client_address


def _text(value: bytes | str) -> str:
    """Header bytes as text, byte for byte (latin-1), as CGI passes them."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def peer_address(request: Request) -> tuple[str, str]:
    """The client's host and port, for ``REMOTE_ADDR`` and ``REMOTE_PORT`` (the port empty when unknown).

    The one place the CGI environment asks who the client is: the admission's answer
    (``request.clientAddress``), not the TCP peer, so a proxied client is the client.
    """
    client = client_address(request)
    return client.host, "" if client.port is None else str(client.port)


def cgi_environment(request: Request, endpoint: str, base: Mapping[str, str]) -> dict[str, str]:
    """The program's environment: ``base``, then the request as CGI variables (RFC 3875 §4.1).

    ``SCRIPT_NAME`` is the endpoint, ``PATH_INFO`` the rest of the URL path.
    Every request header ``Name-X`` becomes ``HTTP_NAME_X``, except ``Proxy``
    (the "httpoxy" hole: ``HTTP_PROXY`` would steer the program's HTTP clients).

    Args:
        request: the upgrade request, before the 101.
        endpoint: the endpoint's path.
        base: what the program gets besides the request (``PATH`` and the configured table).

    Returns:
        The environment, without any variable whose value holds a NUL.
    """
    env = dict(base)
    server = request.getHost()
    remote_host, remote_port = peer_address(request)
    rest = request.postpath or []
    env.update(
        GATEWAY_INTERFACE="CGI/1.1",
        SERVER_SOFTWARE=f"wsdaemon/{__version__}",
        SERVER_PROTOCOL=_text(request.clientproto),
        SERVER_NAME=_text(request.getRequestHostname()),
        SERVER_PORT=str(getattr(server, "port", "")),
        REQUEST_METHOD=_text(request.method),
        REQUEST_URI=_text(request.uri),
        SCRIPT_NAME=endpoint,
        PATH_INFO="".join("/" + _text(segment) for segment in rest) if any(rest) else "",
        QUERY_STRING=_text(request.uri.partition(b"?")[2]),
        REMOTE_ADDR=remote_host,
        REMOTE_PORT=remote_port,
    )
    if request.isSecure():
        env["HTTPS"] = "on"
    for name, values in request.requestHeaders.getAllRawHeaders():
        key = "HTTP_" + _text(name).upper().replace("-", "_")
        if key != "HTTP_PROXY":
            env[key] = ", ".join(_text(value) for value in values)
    return {key: value for key, value in env.items() if "\x00" not in value}
