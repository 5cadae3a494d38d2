"""A string wrapper for credentials whose repr and str never show the value."""

from __future__ import annotations

from typing import Final

MASK: Final = "**********"


class Secret:
    """Holds a credential; only :meth:`reveal` gives the value back.

    Masking in ``repr``/``str``/``format`` means a secret that ends up in a log line, an
    exception message or a Sentry event by accident shows as ``**********``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
