"""The "shout" wsdaemon handler, as a plugin: only a lazy descriptor, so importing this is cheap."""

from wsdaemon.plugins import HandlerPlugin

shout = HandlerPlugin(
    name="shout",
    module="wsdaemon_shout",
    description="answers every text message in capitals (an example third-party handler)",
    options={
        "suffix": 'string of at most 16 characters (default "!"): added after each answer',
    },
)
