"""Channel names: the URL path members connect to (``/chat/room1``).

Re-exported from :mod:`wsdaemon.hub.channels`, where the rules live (this
module was their stand-in until the hub landed): a name starts with ``/``, has
no empty, ``.`` or ``..`` segment, no ``?`` or ``#``, no control or
line-separator character, and is at most :data:`MAX_CHANNEL_BYTES` bytes of
UTF-8, so it is safe in Redis keys, in log lines and on a ``redis-cli``
command line.
"""

from __future__ import annotations

from wsdaemon.hub.channels import MAX_CHANNEL_BYTES, channel_problem

__all__ = ["MAX_CHANNEL_BYTES", "channel_problem"]
