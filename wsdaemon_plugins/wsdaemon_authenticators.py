"""Built-in wsdaemon authenticators, as lazy plugin descriptors (nothing heavy is imported here)."""

from wsdaemon.plugins import AuthenticatorPlugin

none = AuthenticatorPlugin(
    name="none",
    module="wsdaemon.auth.none_auth",
    description="everyone may connect, anonymously (the default)",
)

jwt = AuthenticatorPlugin(
    name="jwt",
    module="wsdaemon.auth.jwt_auth",
    description="a signed JSON Web Token (RFC 7519) verified with PyJWT; 401 with a Bearer challenge otherwise",
    options={
        "algorithms": 'list (required): e.g. ["HS256"] (with secret_file) or ["RS256"], ["ES256"], ["EdDSA"] '
        '(with public_key_file); never "none", never HS* and asymmetric ones together',
        "secret_file": "path: the HMAC secret for HS256/384/512 (at least 32/48/64 bytes); re-read on SIGHUP",
        "public_key_file": "path: a PEM public key or certificate for RS*, PS*, ES256/384/512 or EdDSA; re-read on SIGHUP",
        "audience": "string or list (default none): the aud claim must name one of these",
        "issuer": "string (default none): the iss claim must be this",
        "leeway_seconds": "number 0-300 (default 0): clock skew forgiven on exp, nbf and iat",
        "token_from": 'list of "header", "cookie", "query" (default ["header"]): where the token is read, '
        'in that order ("query" reads the token parameter)',
        "cookie_name": 'string (default "access_token"): the cookie read when token_from has "cookie"',
        "realm": 'string (default "wsdaemon"): the realm of the WWW-Authenticate challenge',
    },
)

basic = AuthenticatorPlugin(
    name="basic",
    module="wsdaemon.auth.basic_auth",
    description="HTTP Basic (RFC 7617) against an htpasswd file of bcrypt hashes; 401 with a Basic challenge otherwise",
    options={
        "htpasswd_file": "path (required): user:bcrypt-hash lines, as htpasswd -B writes them; re-read on SIGHUP",
        "realm": 'string (default "wsdaemon"): the realm of the WWW-Authenticate challenge',
        "max_pending_checks": "integer 1-10000 (default 32): password checks running or waiting at once; more get 503",
    },
)
