"""The built-in authenticators (:class:`~wsdaemon.interfaces.IAuthenticator`): today ``none``.

Every WebSocket endpoint runs one before its handshake; see
:class:`~wsdaemon.web.resource.WebSocketResource` for where in the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zope.interface import implementer

from wsdaemon.interfaces import IAuthenticator

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
