"""Typed reading of an endpoint's handler options, for handler plugins.

Each reader returns the option's value (or its default) and raises
:class:`~wsdaemon.interfaces.HandlerOptionsError` naming the option and what it
expects; the daemon reports that at startup as
``endpoints[N].options.NAME: expected ..., got ...``. TOML booleans are never
accepted as numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wsdaemon.interfaces import HandlerOptionsError

#: Stands for "no default: the option is required".
REQUIRED: Any = object()


class OptionReader:
    """Reads ``options`` (an endpoint's ``[endpoints.options]`` table) one typed option at a time."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    def _get(self, name: str, default: Any, expected: str) -> Any:
        if name in self.options:
            return self.options[name]
        if default is REQUIRED:
            raise HandlerOptionsError(name, expected, "missing")
        return default

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        """An integer from ``minimum`` to ``maximum``."""
        expected = f"an integer from {minimum} to {maximum}"
        value = self._get(name, default, expected)
        if type(value) is not int or not minimum <= value <= maximum:
            raise HandlerOptionsError(name, expected, value)
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        """A number (integer or float) from ``minimum`` to ``maximum``, as a float."""
        expected = f"a number from {minimum} to {maximum}"
        value = self._get(name, default, expected)
        if type(value) not in (int, float) or not minimum <= value <= maximum:
            raise HandlerOptionsError(name, expected, value)
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        """true or false."""
        value = self._get(name, default, "true or false")
        if not isinstance(value, bool):
            raise HandlerOptionsError(name, "true or false", value)
        return value

    def string(self, name: str, default: str = REQUIRED, *, expected: str = "a non-empty string") -> str:
        """A non-empty string."""
        value = self._get(name, default, expected)
        if not isinstance(value, str) or not value:
            raise HandlerOptionsError(name, expected, value)
        return value

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices``."""
        expected = "one of " + ", ".join(f'"{choice}"' for choice in choices)
        value = self._get(name, default, expected)
        if value not in choices or not isinstance(value, str):
            raise HandlerOptionsError(name, expected, value)
        return value

    def strings(
        self, name: str, default: Sequence[str] = REQUIRED, *, expected: str = "a non-empty list of non-empty strings"
    ) -> tuple[str, ...]:
        """A non-empty list of non-empty strings."""
        value = self._get(name, default, expected)
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(isinstance(item, str) and item for item in value)
        ):
            raise HandlerOptionsError(name, expected, value)
        return tuple(value)

    def string_table(self, name: str) -> dict[str, str]:
        """A table of string values (default empty), e.g. extra environment variables."""
        expected = 'a table of strings, such as { LANG = "C.UTF-8" }'
        value = self._get(name, {}, expected)
        if not isinstance(value, Mapping) or not all(
            isinstance(key, str) and key and isinstance(item, str) for key, item in value.items()
        ):
            raise HandlerOptionsError(name, expected, value)
        return dict(value)
