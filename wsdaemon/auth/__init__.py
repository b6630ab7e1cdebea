"""Authentication before the upgrade: who may open a WebSocket, checked before the 101.

Rules for this package:

* An endpoint's ``[endpoints.auth]`` table names an authenticator (``type``): ``none`` (the
  default), ``jwt``, ``basic``, or any installed authenticator plugin. The authenticator looks at
  the upgrade request and answers with an :class:`~wsdaemon.interfaces.Identity`, or refuses
  with a typed rejection that carries its HTTP answer (401 with ``WWW-Authenticate``, 403, 503).
* A credential (a token, a password) never goes into a log line or onto the wire: a rejection
  carries a short ``why`` for the log written by the authenticator, from our own words.
* Key files and password files are read when the authenticator is built (at start and on
  SIGHUP); a file that cannot be used is an options error naming the key and the file.

Modules: :mod:`~wsdaemon.auth.none_auth` (``none``, every endpoint's default, re-exported
here), :mod:`~wsdaemon.auth.errors` (the rejections), :mod:`~wsdaemon.auth.tokens` (where a bearer token is read from),
:mod:`~wsdaemon.auth.keys` (key files), :mod:`~wsdaemon.auth.jwt_auth` (JWT with PyJWT),
:mod:`~wsdaemon.auth.htpasswd` and :mod:`~wsdaemon.auth.basic_auth` (passwords with bcrypt),
:mod:`~wsdaemon.auth.channels` (channel paths a claim allows).
"""

from wsdaemon.auth.none_auth import NO_AUTHENTICATION, NoAuthentication

__all__ = ["NO_AUTHENTICATION", "NoAuthentication"]
