"""Hub events as rows of the ``_events`` stream: status changes, alarms, the command log, storage problems.

The same five fields as the run file's event log (time, source, kind, level,
message) and its ``details`` as JSON text.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..hub.events import as_run_event
from .protocol import EVENT_SCHEMA, dumps


def event_row(event: Any) -> dict[str, Any]:
    """``{timestamp_ns, source, kind, level, message, detail}`` for an event the hub emitted."""
    run_event = as_run_event(event)
    return {
        "timestamp_ns": run_event.time_ns,
        "source": run_event.source,
        "kind": run_event.kind,
        "level": run_event.level,
        "message": run_event.message,
        "detail": dumps(dict(run_event.details)).decode() if run_event.details else None,
    }


def event_batch(event: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([event_row(event)], schema=EVENT_SCHEMA)
