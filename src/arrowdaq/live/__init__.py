"""The live service (Arrow Flight): the daemon's server and the client every other process uses.

Import the client from here (``arrowdaq.connect``, ``arrowdaq.live.Client``);
the server lives in ``arrowdaq.live.server`` and is loaded only by the daemon.
"""

from .client import Client, StreamInfo, Subscription, connect

__all__ = ["Client", "StreamInfo", "Subscription", "connect"]
