"""``twistd wsdaemon`` / ``twist wsdaemon``: the daemon as a Twisted application plugin."""

from twisted.application.service import ServiceMaker

wsdaemon = ServiceMaker(
    "wsdaemon",
    "wsdaemon.tap",
    "A WebSocket daemon: RFC 6455 endpoints and plain HTTP on the same port",
    "wsdaemon",
)
