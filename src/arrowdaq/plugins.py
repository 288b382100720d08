"""Classes a configuration names, found among the built-ins or in installed packages' entry points.

Drivers (``arrowdaq.drivers``), processors (``arrowdaq.processors``) and simulators
(``arrowdaq.simulators``) are found the same way: a package registers a class under a
name in its ``pyproject.toml``::

    [project.entry-points."arrowdaq.processors"]
    peak_hold = "peak_hold:PeakHoldProcessor"

and the configuration uses that name (``kind = "peak_hold"``). A built-in of the same
name wins. Any failure is a ``ConfigError`` (or the registry's own error) that names
the name and what went wrong: unknown (with the names known), not importable, not
the right kind of class.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from .errors import ArrowDAQError, ConfigError

C = TypeVar("C")


def installed(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (the first one installed, when two packages use a name)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def target_text(target: object) -> str:
    """``"package.module:Class"`` for a target given as text, an entry point or a class."""
    if isinstance(target, EntryPoint):
        return target.value
    if isinstance(target, type):
        return f"{target.__module__}:{target.__qualname__}"
    return str(target)


def failed_at(exc: BaseException) -> str:
    """`` (at file:line)``: where a plugin's import failed, so its author finds the line in a one-line error.

    The innermost frame outside importlib and this module; a SyntaxError names its line itself.
    """
    if isinstance(exc, SyntaxError):
        return ""
    machinery = (importlib.__file__ or "").rpartition("/")[0] + "/"
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not (f.filename.startswith(("<frozen", machinery)) or f.filename == __file__)
    ]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def load_class(
    target: str | type[C] | EntryPoint, base: type[C], what: str, error: type[ArrowDAQError] = ConfigError
) -> type[C]:
    """The class ``target`` names (``"package.module:Class"`` or an entry point), checked to be a ``base``.

    ``what`` starts the messages: ``"driver 'x': simulator"`` gives "driver 'x': simulator 'a.b:C' cannot be
    loaded: ImportError: ..." or "... is not a SimDevice subclass".
    """
    if isinstance(target, type):
        found: object = target
    else:
        text = target_text(target)
        try:
            if isinstance(target, EntryPoint):
                found = target.load()
            else:
                module, _, name = target.partition(":")
                found = getattr(importlib.import_module(module), name)
        except Exception as exc:  # a plugin's import may fail any way; the message says which plugin
            raise error(f"{what} {text!r} cannot be loaded: {type(exc).__name__}: {exc}{failed_at(exc)}") from exc
    if not (isinstance(found, type) and issubclass(found, base)):
        raise error(f"{what} {target_text(target)!r} is not a {base.__name__} subclass")
    return found


class Registry(Generic[C]):
    """Name → class of one kind: the built-ins (a live mapping: additions count) and one entry point group."""

    def __init__(
        self,
        what: str,
        group: str,
        base: type[C],
        builtin: Mapping[str, str | type[C]],
        error: type[ArrowDAQError] = ConfigError,
    ) -> None:
        #: What a name names, for messages: ``driver``, ``processor kind``.
        self.what = what
        self.group = group
        self.base = base
        self.builtin = builtin
        self.error = error

    def names(self) -> list[str]:
        """Every name a configuration may use, sorted."""
        return sorted(set(self.builtin) | set(installed(self.group)))

    def load(self, name: str) -> type[C]:
        """The class registered as ``name``; the error lists the known names."""
        target: str | type[C] | EntryPoint | None = self.builtin.get(name)
        if target is None:
            target = installed(self.group).get(name)
        if target is None:
            plural = self.what.split()[-1] + "s"  # "driver" -> "drivers", "processor kind" -> "kinds"
            raise self.error(f"unknown {self.what} {name!r} ({plural}: {', '.join(self.names())})")
        return load_class(target, self.base, f"{self.what} {name!r} from", self.error)
