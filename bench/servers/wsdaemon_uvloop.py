"""wsdaemon on Twisted's asyncio reactor over uvloop: what another reactor gives.

Not how wsdaemon runs by default (that is Twisted's epoll reactor). The same
``twist`` command line as the ``wsdaemon`` entry, with the reactor installed
first, the way ``twist --reactor asyncio`` would, but on a uvloop loop:

    python bench/servers/wsdaemon_uvloop.py wsdaemon --listen tcp:9000
"""

from __future__ import annotations

import sys

import uvloop
from twisted.internet import asyncioreactor

asyncioreactor.install(uvloop.new_event_loop())

# What ``python -m twisted`` runs; twist keeps the reactor installed above.
from twisted.application.twist._twist import Twist  # noqa: E402

if __name__ == "__main__":
    Twist.main([sys.argv[0], *sys.argv[1:]])
