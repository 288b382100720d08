"""The window (``arrowdaq gui``): a separate process and a pure client of the live service.

It imports nothing from the daemon but the live-service client (``arrowdaq.live.client``),
and that only in :mod:`arrowdaq.gui.app`; the widgets talk to a :class:`~arrowdaq.gui.link.Link`.
A crashed or frozen window never costs data: the daemon keeps only the newest batches for it.
"""
