"""Typed reading of an endpoint's handler options, for handler plugins.

Each reader returns the option's value (or its default). A bad value is a
:class:`~wsdaemon.interfaces.HandlerOptionsError` naming the option and what it
expects; the daemon reports it at startup as
``endpoints[N].options.NAME: expected ..., got ...``. TOML booleans are never
accepted as numbers.

By default a reader raises at the first bad option. With ``collect=True`` it
notes each one, returns a stand-in so reading can go on, and :meth:`OptionReader.check`
raises them all at once (an :class:`~wsdaemon.interfaces.InvalidHandlerOptions`
when there are several), so a config with three typos takes one round, not three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from wsdaemon.interfaces import HandlerOptionsError, InvalidHandlerOptions

#: Stands for "no default: the option is required".
REQUIRED: Any = object()

T = TypeVar("T")


class OptionReader:
    """Reads ``options`` (an endpoint's ``[endpoints.options]`` table) one typed option at a time."""

    def __init__(self, options: Mapping[str, Any], *, collect: bool = False) -> None:
        self.options = options
        self.collect = collect
        self.problems: list[HandlerOptionsError] = []

    def report(self, name: str, expected: str, got: object) -> None:
        """A bad option found by the handler's own checks: raised now, or kept for :meth:`check`."""
        error = HandlerOptionsError(name, expected, got)
        if not self.collect:
            raise error
        self.problems.append(error)

    def check(self) -> None:
        """Raise every bad option noted so far, at once (nothing happens when there is none).

        Raises:
            HandlerOptionsError: one bad option, or an ``InvalidHandlerOptions`` with all of them.
        """
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            raise InvalidHandlerOptions(self.problems)

    def _get(self, name: str, default: Any, expected: str) -> Any:
        if name in self.options:
            return self.options[name]
        if default is REQUIRED:
            self.report(name, expected, "missing")
        return default

    def _bad(self, name: str, expected: str, value: Any, default: Any, stand_in: T) -> T:
        """Report ``value``; go on with the default, or ``stand_in`` for a required option."""
        if value is not REQUIRED:  # a missing required option is already reported
            self.report(name, expected, value)
        return stand_in if default is REQUIRED else default

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        """An integer from ``minimum`` to ``maximum``."""
        expected = f"an integer from {minimum} to {maximum}"
        value = self._get(name, default, expected)
        if type(value) is not int or not minimum <= value <= maximum:
            return self._bad(name, expected, value, default, minimum)
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        """A number (integer or float) from ``minimum`` to ``maximum``, as a float."""
        expected = f"a number from {minimum} to {maximum}"
        value = self._get(name, default, expected)
        if type(value) not in (int, float) or not minimum <= value <= maximum:
            return float(self._bad(name, expected, value, default, minimum))
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        """true or false."""
        value = self._get(name, default, "true or false")
        if not isinstance(value, bool):
            return self._bad(name, "true or false", value, default, False)
        return value

    def string(self, name: str, default: str = REQUIRED, *, expected: str = "a non-empty string") -> str:
        """A non-empty string."""
        value = self._get(name, default, expected)
        if not isinstance(value, str) or not value:
            return self._bad(name, expected, value, default, "")
        return value

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        """One of ``choices``."""
        expected = "one of " + ", ".join(f'"{choice}"' for choice in choices)
        value = self._get(name, default, expected)
        if value not in choices or not isinstance(value, str):
            return self._bad(name, expected, value, default, choices[0])
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
            return tuple(self._bad(name, expected, value, default, ()))
        return tuple(value)

    def string_table(self, name: str) -> dict[str, str]:
        """A table of string values (default empty), e.g. extra environment variables."""
        expected = 'a table of strings, such as { LANG = "C.UTF-8" }'
        value = self._get(name, {}, expected)
        if not isinstance(value, Mapping) or not all(
            isinstance(key, str) and key and isinstance(item, str) for key, item in value.items()
        ):
            return self._bad(name, expected, value, {}, {})
        return dict(value)
