"""The ``none`` authenticator (:class:`~wsdaemon.interfaces.IAuthenticator`): every endpoint's default.

Every WebSocket endpoint runs one before its handshake; see
:class:`~wsdaemon.web.resource.WebSocketResource` for where in the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from wsdaemon.interfaces import HandlerContext, IAuthenticator

if TYPE_CHECKING:
    from twisted.web.server import Request

__all__ = ["NO_AUTHENTICATION", "NoAuthentication"]


@implementer(IAuthenticator)
class NoAuthentication:
    """The ``none`` authenticator, every endpoint's default: everyone is let in, anonymously.

    Handlers then see ``request.identity`` and ``transport.identity`` as None.
    """

    name = "none"

    def authenticate(self, request: Request) -> None:
        """Let ``request`` in with no identity (and without a Deferred: the upgrade goes on at once)."""
        return None


#: The one shared instance (it has no state).
NO_AUTHENTICATION = NoAuthentication()


def build_authenticator(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> NoAuthentication:
    """The ``none`` authenticator (it has no options and no state: the one shared instance)."""
    return NO_AUTHENTICATION
