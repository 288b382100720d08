"""Plain-data messages that any actor may understand.

Messages are dataclasses of plain values (and Arrow batches) so that an actor can
later live in another process or on another host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Command:
    """Ask an actor to do something: ``Command("set_wavelength", {"nm": 800})``.

    ``client`` says who asked (a live-service client, the demo, a script): the
    command log records it.
    """

    action: str
    args: dict[str, Any] = field(default_factory=dict)
    client: str = "local"
