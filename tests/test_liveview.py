"""The terminal view shows what an operator looks for: status, last error, rates, drops, the file."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from arrowdaq.actors import Actor, Role
from arrowdaq.app.liveview import TerminalView, render
from arrowdaq.data import scalar_batch, scalar_schema


class Broken(Actor):
    role = Role.SOURCE

    async def on_start(self):
        raise ConnectionError("cannot open /dev/ttyUSB7")


async def test_panel_shows_instruments_errors_streams_drops_and_file(hub, tmp_path):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    gui = hub.subscribe("pm1/*", policy="latest", max_batches=2, name="gui")
    for i in range(5):
        await hub.publish(
            "pm1/power", scalar_batch(np.ones(10), channel="power", unit="W", timestamps_ns=np.arange(10))
        )
    ref = hub.spawn("pm2", Broken)
    await ref.wait_status(ref.status.FAILED, timeout=5)
    run_file = tmp_path / "run.h5"
    run_file.write_bytes(b"x" * 2048)
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(render(hub.status(), run_file))
    text = console.export_text()
    assert "pm2" in text and "Failed" in text and "cannot open /dev/ttyUSB7" in text
    assert "pm1/power" in text and "50" in text  # rows
    assert "gui" in text and "latest" in text and gui.drops == 3 and " 3 " in text
    assert f"run file: {run_file} (2.0 KiB)" in text


async def test_plain_lines_when_not_a_terminal(hub, capsys):
    hub.declare("pm1/power", scalar_schema("W"), producer="pm1")
    view = TerminalView(hub.status, lambda: None, duration=None, console=Console(file=io.StringIO()))
    hub.add_listener(view.event)
    ref = hub.spawn("pm2", Broken)
    await ref.wait_status(ref.status.FAILED, timeout=5)
    with view:
        view.update()
    out = capsys.readouterr().out
    assert "pm2 Restarting: ConnectionError: cannot open /dev/ttyUSB7" in out
    assert "pm2 Failed: ConnectionError: cannot open /dev/ttyUSB7" in out
    assert "pm1/power 0.0/s" in out
