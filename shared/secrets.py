"""A string wrapper for secrets (passwords, tokens, API keys) that never shows its value by accident.

`str()`, `repr()` and f-strings print a mask; only `.reveal()` gives the value, and only the code that puts
it on the wire (an Authorization header, a login body) calls it.
"""

from __future__ import annotations

MASK = "********"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    __format__ = lambda self, spec: MASK
