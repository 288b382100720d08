"""The terminal view shows what an operator looks for: values with units, statuses, folded warnings."""

from __future__ import annotations

import io
import logging

import numpy as np
from rich.console import Console

from arrowdaq.actors import Actor, Role
from arrowdaq.app.liveview import LogPane, TerminalView, render_values, stop_progress
from arrowdaq.data import scalar_batch, scalar_schema


class Broken(Actor):
    role = Role.SOURCE

    async def on_start(self):
        raise ConnectionError("cannot open /dev/ttyUSB7")


def text_of(renderable, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(renderable)
    return console.export_text()


async def test_values_show_the_last_reading_with_its_unit_rates_and_the_producers_status(hub):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    hub.request_rate("pm1/power", 20.0)
    for i in range(5):
        values = np.full(10, 1.5e-3 * (i + 1))
        await hub.publish("pm1/power", scalar_batch(values, channel="power", unit="W", timestamps_ns=np.arange(10)))
    ref = hub.spawn("pm1", Broken)
    await ref.wait_status(ref.status.FAILED, timeout=5)
    text = text_of(render_values(hub, hub.status()))
    row = next(line for line in text.splitlines() if "pm1/power" in line)
    assert "0.0075 W" in row and "20.0" in row and "Failed" in row


def test_a_repeated_warning_is_folded_into_one_line_with_a_count():
    pane = LogPane()
    log = logging.getLogger("arrowdaq.test.liveview")
    log.addHandler(pane)
    try:
        for n in range(1, 31):
            log.warning(f"[cam1] dropped {n} frame(s): the reader is slower than the camera")
        log.error("[pm2] failed: ConnectionLost")
        log.info("not shown: below warning")
    finally:
        log.removeHandler(pane)
    text = text_of(pane.render(8))
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 2
    assert "dropped 30 frame(s)" in lines[0] and "(×30, first" in lines[0]  # the newest numbers, the count
    assert "[pm2] failed: ConnectionLost" in lines[1]


async def test_stop_progress_counts_each_role(hub):
    ref = hub.spawn("pm2", Broken)
    await ref.wait_status(ref.status.FAILED, timeout=5)
    assert stop_progress(hub.status()) == "instruments 1/1"


async def test_plain_lines_when_not_a_terminal(hub, capsys):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    view = TerminalView(hub, lambda: None, duration=None, console=Console(file=io.StringIO()))
    hub.add_listener(view.event)
    ref = hub.spawn("pm2", Broken)
    await ref.wait_status(ref.status.FAILED, timeout=5)
    hub.alarm("pm1", "pm1/power has carried 2 rows/s")
    with view:
        view.update()
        view.stopping()
    out = capsys.readouterr().out
    assert "pm2 Restarting: ConnectionError: cannot open /dev/ttyUSB7" in out
    assert "pm2 Failed: ConnectionError: cannot open /dev/ttyUSB7" in out
    assert "ALARM warning pm1: pm1/power has carried 2 rows/s" in out
    assert "pm1/power 0.0/s" in out
    assert "stopping: instruments first" in out
