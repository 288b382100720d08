"""The hub: stream declarations, fan-out with delivery policies, command routing."""

from .manager import Alarm, InstrumentManager
from .streams import StreamSpec
from .subscription import Policy, Subscription

__all__ = ["Alarm", "InstrumentManager", "Policy", "StreamSpec", "Subscription"]
