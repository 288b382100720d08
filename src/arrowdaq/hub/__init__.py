"""The hub: stream declarations, fan-out with delivery policies, command routing."""

from .events import RunEvent, as_run_event
from .manager import Alarm, InstrumentManager
from .producer import BATCH_LATENCY, BATCH_ROWS, Producer
from .rates import RateWatch
from .streams import StreamSpec
from .subscription import LOSSLESS_MAX_BYTES, Delivery, Subscription, batch_memory

__all__ = [
    "BATCH_LATENCY",
    "BATCH_ROWS",
    "LOSSLESS_MAX_BYTES",
    "Alarm",
    "InstrumentManager",
    "Delivery",
    "Producer",
    "RateWatch",
    "RunEvent",
    "StreamSpec",
    "Subscription",
    "as_run_event",
    "batch_memory",
]
