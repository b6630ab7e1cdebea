"""``Sec-WebSocket-Extensions`` offers (RFC 6455 §9.1), parsed for extensions to negotiate."""

from __future__ import annotations

from dataclasses import dataclass

from wsdaemon.core.errors import BadRequest
from wsdaemon.core.http import is_token, split_list, split_outside_quotes


@dataclass(frozen=True)
class ExtensionOffer:
    """One offered extension with its parameters; a valueless parameter has value None."""

    name: str
    params: tuple[tuple[str, str | None], ...]


def _unquote(value: str) -> str:
    """Undo an HTTP quoted-string (RFC 9110 §5.6.4)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_extension_offers(values: list[str]) -> list[ExtensionOffer]:
    """Parse every ``Sec-WebSocket-Extensions`` header value into offers, in order.

    Raises:
        BadRequest: an offer is not ``token *( ";" token [ "=" (token / quoted-string) ] )``.
    """
    offers = []
    for element in split_list(values):
        name, *raw_params = split_outside_quotes(element, ";")
        if not is_token(name):
            raise BadRequest(f"malformed Sec-WebSocket-Extensions offer {element!r}")
        params: list[tuple[str, str | None]] = []
        for raw in raw_params:
            key, equals, value = (part.strip() for part in raw.partition("="))
            if not is_token(key):
                raise BadRequest(f"malformed extension parameter {raw!r}")
            if not equals:
                params.append((key.lower(), None))
                continue
            unquoted = _unquote(value)
            if not is_token(unquoted):
                # RFC 6455 §9.1: a quoted value must still be a token once unquoted.
                raise BadRequest(f"malformed extension parameter value {raw!r}")
            params.append((key.lower(), unquoted))
        offers.append(ExtensionOffer(name.lower(), tuple(params)))
    return offers
