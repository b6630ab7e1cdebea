"""The "session" wsdaemon authenticator, as a plugin: only a lazy descriptor, so importing this is cheap."""

from wsdaemon.plugins import AuthenticatorPlugin

session = AuthenticatorPlugin(
    name="session",
    module="wsdaemon_session_auth",
    description="a session cookie, checked by asking the deployment's own HTTP backend (an example plugin)",
    options={
        "backend_url": 'string (required): the http:// or https:// URL asked, e.g. "http://127.0.0.1:9000/session"',
        "cookie_name": 'string (default "session"): the cookie holding the session id',
    },
)
