"""The demo's sequence on the simulated optical table.

:func:`prepare_table` switches the laser on and opens its shutter while the
daemon starts (scans asked for meanwhile wait for it); then, every second, the
half-wave plate turns by 15° (the power meter follows Malus's law, the trigger
fires on the falling power) and the stage steers the beam spot across the
camera. A step that fails is logged and the sequence goes on: the demo also
shows how arrowdaq behaves when a device misbehaves. An axis a scan holds is
left alone until the scan ends.
"""

from __future__ import annotations

import asyncio
import math

from ..errors import ArrowDAQError, describe
from ..hub import InstrumentManager
from ..log import get_logger

log = get_logger("arrowdaq.demo")


async def _step(hub: InstrumentManager, actor: str, action: str, **args: object) -> None:
    if any(r.covers(actor, args) for r in hub.reservations):
        return  # a scan holds the axis: the sequence leaves it alone until the scan ends
    try:
        await hub.command(actor, action, timeout=10.0, **args)
    except ArrowDAQError as exc:
        log.warning(f"demo step {actor}.{action}{args or ''} failed: {describe(exc)}")


async def prepare_table(hub: InstrumentManager) -> None:
    """Light the table: the laser at 800 nm, emission on, shutter open (the demo and demo scans)."""
    await _step(hub, "laser", "set_wavelength", nm=800.0)
    await _step(hub, "laser", "emission_on")
    await _step(hub, "laser", "open_shutter")


async def demo_sequence(hub: InstrumentManager, period: float = 1.0) -> None:
    """Run until cancelled (after :func:`prepare_table`)."""
    step = 0
    while True:
        step += 1
        await _step(hub, "hwp", "move_to", target=float((15 * step) % 180))
        await _step(hub, "stage", "move_to", target=round(3.0 * math.sin(step / 3), 3), axis=2)
        await asyncio.sleep(period)
