"""Logging with context.

Lines carry the actor, stream or run they concern, e.g.
``12:00:01 WARNING arrowdaq.instruments [pm1] reply 'OVER': over range``.
Everything goes through the standard `logging` module, so applications
configure it the usual way.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

CONTEXT_KEYS = ("actor", "stream", "run")


class ContextAdapter(logging.LoggerAdapter):
    """A logger that prefixes each message with its context, e.g. ``[pm1 pm1/power]``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.pop("extra", None) or {})
        kwargs["extra"] = extra
        tags = " ".join(str(extra[k]) for k in CONTEXT_KEYS if extra.get(k))
        return (f"[{tags}] {msg}" if tags else msg), kwargs


def get_logger(name: str, **context: Any) -> ContextAdapter:
    """A logger under the ``arrowdaq`` tree with fixed context (actor=, stream=, run=)."""
    if not name.startswith("arrowdaq"):
        name = f"arrowdaq.{name}"
    return ContextAdapter(logging.getLogger(name), context)


def configure(level: int | str = logging.INFO) -> None:
    """Plain timestamped lines on stderr; for applications, not libraries."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )
