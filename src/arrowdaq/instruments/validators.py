"""Validators for declared controls: they raise CommandError naming the value and the limit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..errors import CommandError

Validator = Callable[[Any, str], Any]


def in_range(low: float, high: float) -> Validator:
    """Accept numbers in [low, high]."""

    def check(value: Any, what: str) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CommandError(f"{what}: {value!r} is not a number") from None
        if not low <= number <= high:
            raise CommandError(f"{what}: {value!r} is outside {low:g}..{high:g}")
        return number

    return check


def one_of(choices: Iterable[Any]) -> Validator:
    """Accept one of a fixed set of values."""
    allowed = list(choices)

    def check(value: Any, what: str) -> Any:
        if value not in allowed:
            raise CommandError(f"{what}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return allowed[allowed.index(value)]  # the declared form: 3.0 from a JSON client becomes 3

    return check


def boolean(value: Any, what: str) -> bool:
    """Accept True/False, 1/0, 'on'/'off'."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "open", "yes"):
        return True
    if text in ("0", "false", "off", "closed", "no"):
        return False
    raise CommandError(f"{what}: {value!r} is not on/off")


def int_in_range(low: int, high: int) -> Validator:
    """Accept whole numbers in [low, high] (for commands that take an integer field)."""
    as_number = in_range(low, high)

    def check(value: Any, what: str) -> int:
        number = as_number(value, what)
        if number != int(number):
            raise CommandError(f"{what}: {value!r} is not a whole number")
        return int(number)

    return check
