"""The hub: stream declarations, fan-out with delivery policies, command routing."""

from .manager import Alarm, InstrumentManager
from .streams import StreamSpec
from .subscription import LOSSLESS_MAX_BYTES, Policy, Subscription, batch_memory

__all__ = ["LOSSLESS_MAX_BYTES", "Alarm", "InstrumentManager", "Policy", "StreamSpec", "Subscription", "batch_memory"]
