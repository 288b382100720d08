"""The live service's public contract, shared by the server and the client (docs/live-service.md).

Plain constants and JSON helpers only: the client (and the GUI, which imports
only the client) must not pull in the daemon.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

#: The stream of status changes, warnings, alarms and the command log.
EVENTS_STREAM = "_events"
#: Delivery modes of ``do_get``.
MODES = ("latest", "lossless")
#: A ``do_get`` that answers the newest batch of the stream (none if it has none yet) and ends.
SNAPSHOT = "snapshot"
#: Seconds between heartbeats (an empty batch) on an idle ``do_get``.
HEARTBEAT_S = 1.0
#: The header that carries the token: ``authorization: Bearer <token>``.
AUTH_HEADER = "authorization"
#: Optional header naming the client in the command log (``arrowdaq-cli``, ``gui``, a notebook...).
CLIENT_HEADER = "x-arrowdaq-client"

#: ``do_action`` types and what they do (``list_actions`` answers with these).
ACTIONS = {
    "ping": "liveness: {} -> {pong, time_ns, version}",
    "describe": "instruments: capabilities, controls (unit, limits/choices, read-only), commands, streams",
    "status": "instruments, streams, subscribers, rates, drops, recording",
    "command": "run an instrument command: {instrument, command, args} -> {result}",
    "get": "read a setting: {instrument, name} -> {value}",
    "set": "change a setting: {instrument, name, value} -> {value (read back)}",
    "record": "recording: {action: start|stop|state, name, operator, sample, notes} -> recording state",
    "scan": "scans: {action: submit|pause|resume|stop|abort|state|dry_run|plans, plan, args, detectors, settle,"
    " reads, immediate} -> the engine's state (plans: the plans with their parameters)",
}

#: The key of a Flight error's ``extra_info`` that names the arrowdaq error the daemon raised (the client
#: maps the name back to the type).
ERROR_INFO_KEY = "error"

EVENT_SCHEMA = pa.schema(
    [
        pa.field("timestamp_ns", pa.uint64(), nullable=False),
        pa.field("source", pa.utf8(), nullable=False),
        pa.field("kind", pa.utf8(), nullable=False),
        pa.field("level", pa.utf8(), nullable=False),
        pa.field("message", pa.utf8(), nullable=False),
        pa.field("detail", pa.utf8(), nullable=True),
    ],
    metadata={"arrowdaq.kind": "events"},
)


def dumps(value: Any) -> bytes:
    """JSON for the wire: numbers, strings, lists, dicts; anything else as its text."""
    return json.dumps(value, default=_plain, separators=(",", ":")).encode()


def error_info(name: str, **details: Any) -> bytes:
    """A Flight error's ``extra_info``: the arrowdaq error's type name, and details (a gap's ``seq``)."""
    return dumps({ERROR_INFO_KEY: name, **details})


def loads(data: bytes | pa.Buffer | None) -> Any:
    if data is None:
        return None
    raw = data.to_pybytes() if isinstance(data, pa.Buffer) else bytes(data)
    return json.loads(raw) if raw else None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "value") and hasattr(value, "name"):  # enums
        return value.value
    return str(value)


def ticket(stream: str, mode: str = "latest", **options: Any) -> bytes:
    """The ``do_get`` ticket: ``{"stream": "pm1/power", "mode": "latest"}``."""
    return dumps({"stream": stream, "mode": mode, **options})
