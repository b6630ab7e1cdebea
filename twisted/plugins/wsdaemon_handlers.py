"""Built-in wsdaemon handlers, as lazy plugin descriptors (nothing heavy is imported here)."""

from wsdaemon.plugins import HandlerPlugin

echo = HandlerPlugin(
    name="echo",
    module="wsdaemon.handlers.echo",
    description="sends every text and binary message back to its sender unchanged",
)
