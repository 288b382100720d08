"""Validators for declared controls: they raise CommandError naming the value and the limit.

Each validator is a small callable object that also says what it allows
(``describe()``: limits or choices), so the GUI can build a control from it. A
control's configured value goes through the same validator when it is applied.
Every other configured value (a driver's constructor settings, the SCPI driver's
tables) is a pydantic type checked through ``arrowdaq.validation`` (decision 0166).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import CommandError

Validator = Callable[[Any, str], Any]


@dataclass(frozen=True)
class InRange:
    """Numbers in [low, high]; ``integer`` also requires a whole number (returned as int); ``label``
    (what the range is: "the limits") and ``unit`` are said in the refusal."""

    low: float
    high: float
    integer: bool = False
    unit: str = ""
    label: str = ""

    def __call__(self, value: Any, what: str) -> float | int:
        if isinstance(value, bool):
            raise CommandError(f"{what}: {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CommandError(f"{what}: {value!r} is not a number") from None
        if not self.low <= number <= self.high:
            label, unit = f"{self.label} " if self.label else "", f" {self.unit}" if self.unit else ""
            raise CommandError(f"{what}: {value!r} is outside {label}{self.low:g}..{self.high:g}{unit}")
        if self.integer:
            if number != int(number):
                raise CommandError(f"{what}: {value!r} is not a whole number")
            return int(number)
        return number

    def describe(self) -> dict[str, Any]:
        return {"limits": [self.low, self.high], "type": "int" if self.integer else "float"}


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values (3.0 from a JSON client is taken as the declared 3)."""

    choices: tuple[Any, ...]

    def __call__(self, value: Any, what: str) -> Any:
        if value not in self.choices:
            raise CommandError(f"{what}: {value!r} is not one of {', '.join(map(repr, self.choices))}")
        return self.choices[self.choices.index(value)]

    def describe(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Boolean:
    """True/False, 1/0, 'on'/'off', 'open'/'closed'."""

    def __call__(self, value: Any, what: str) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "on", "open", "yes"):
            return True
        if text in ("0", "false", "off", "closed", "no"):
            return False
        raise CommandError(f"{what}: {value!r} is not on/off")

    def describe(self) -> dict[str, Any]:
        return {"type": "bool"}


def in_range(low: float, high: float) -> InRange:
    """Accept numbers in [low, high]."""
    return InRange(low, high)


def within_limits(low: float, high: float, unit: str) -> InRange:
    """A motor's limits, for a move's target (``target: 999 is outside the limits 0..180 deg``)."""
    return InRange(low, high, unit=unit, label="the limits")


def int_in_range(low: int, high: int) -> InRange:
    """Accept whole numbers in [low, high] (for commands that take an integer field)."""
    return InRange(low, high, integer=True)


def steps_within(limits: InRange) -> InRange:
    """Steps that can end within ``limits`` from somewhere in them: at most their width, either way
    (a relative move's argument, checked before the position it starts from is known)."""
    width = limits.high - limits.low
    return InRange(-width, width, unit=limits.unit, label="the steps the limits allow")


def one_of(choices: Iterable[Any]) -> OneOf:
    """Accept one of a fixed set of values."""
    return OneOf(tuple(choices))


boolean = Boolean()


def describe_validator(validator: Validator | None) -> dict[str, Any]:
    """What a validator allows, for ``describe`` (empty when it does not say)."""
    describe = getattr(validator, "describe", None)
    return describe() if callable(describe) else {}
