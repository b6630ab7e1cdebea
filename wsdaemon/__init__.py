"""wsdaemon: a production WebSocket daemon on Twisted."""

__version__ = "0.1.0"
