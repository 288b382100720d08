"""Issue 9's fault-injection run: a flapping device, a slow device, a garbage burst and a scope whose
record length changes, for about a minute. Every batch the hub published is in the run file or
counted as lost in its event log, and the counts add up exactly."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import arrowdaq
from arrowdaq.actors import ActorStatus, RestartPolicy
from arrowdaq.app.runner import Application, ExitStatus
from arrowdaq.cli.inspect_cmd import describe_run
from arrowdaq.sim.maitai import MaiTaiSim
from arrowdaq.sim.newport_1830c import Newport1830CSim
from arrowdaq.sim.scope import ScopeSim

from .configs import config_in, instrument, lab
from .runs import Running
from .waiting import wait_until_async

CONFIG = lab(
    instrument("pm1", poll_hz=20.0, settings={"timeout": 0.3}),
    instrument("laser", "maitai", poll_hz=5.0, settings={"timeout": 1.0}),
    instrument("scope1", "scpi", poll_hz=5.0),
    name="faults",
    storage={"flush_interval_s": 0.5},
    latency_scale=0.0,
)

#: The scenario, in seconds: how often and how long the power meter's link drops, how slow the
#: laser answers, when the scope sends garbage and when its record length changes.
FLAPS, FLAP_DOWN_S, FLAP_UP_S = 4, 2.0, 4.0
LASER_DELAY_S = 0.15
GARBAGE_S = 4.0


def server_of(app: Application, device_type: type):
    return next(s for s in app.table.servers if isinstance(s.device, device_type))


async def test_every_published_batch_is_in_the_file_or_counted_lost_under_faults(tmp_path):
    app = Application(config_in(tmp_path, CONFIG, "faults.toml"), restart=RestartPolicy())
    async with Running(app) as run:
        await wait_until_async(
            lambda: all(a in app.hub.supervisor.actors for a in ("pm1", "laser", "scope1")), message="the instruments"
        )
        pm1, scope1 = app.hub.actor("pm1"), app.hub.actor("scope1")
        await pm1.wait_status(ActorStatus.RUNNING, timeout=30)
        await scope1.wait_status(ActorStatus.RUNNING, timeout=30)
        meter, laser, scope = server_of(app, Newport1830CSim), server_of(app, MaiTaiSim), server_of(app, ScopeSim)
        laser.faults.extra_delay = LASER_DELAY_S  # slow all run long

        async def flap() -> None:
            for _ in range(FLAPS):
                meter.disconnect()
                await pm1.wait_status(ActorStatus.RECONNECTING, timeout=30)
                await asyncio.sleep(FLAP_DOWN_S)  # the scenario: the link stays down this long
                meter.reconnect()
                await pm1.wait_status(ActorStatus.RUNNING, timeout=30)
                await asyncio.sleep(FLAP_UP_S)  # the scenario: and up this long

        async def scope_faults() -> None:
            await asyncio.sleep(3.0)  # the scenario: the garbage burst comes 3 s into the run
            scope.faults.garbage = True
            await asyncio.sleep(GARBAGE_S)  # the scenario: and lasts this long
            scope.faults.garbage = False
            await scope1.wait_status(ActorStatus.RUNNING, timeout=30)
            for points in (500, 4000):  # the record length changed on the front panel
                scope.device.points = points
                seen = app.hub.streams["scope1/trace"].meter.rows
                await wait_until_async(
                    lambda s=seen: app.hub.streams["scope1/trace"].meter.rows > s + 3, message=f"{points}-point traces"
                )

        await asyncio.gather(flap(), scope_faults())
    summary = run.summary
    assert summary.exit_status is ExitStatus.OK, summary
    published = {name: spec.meter.rows for name, spec in app.hub.streams.items()}
    recorded = arrowdaq.open_run(summary.run_file)
    counts = recorded.counts()
    events = recorded.events.to_pylist()
    lost = Counter()
    for e in events:
        if e["kind"] == "lost":
            details = json.loads(e["details"])
            lost[details["stream"]] += details["rows"]
    for name, rows in published.items():
        stored, in_file_published, in_file_lost = counts[name]
        assert stored + lost[name] == rows == in_file_published, name  # every batch: stored or counted
        assert in_file_lost == lost[name] and summary.stored[name] == stored
    assert published["pm1/power"] > 0 and published["laser/power"] > 0
    lengths = set(len(v) for v in recorded.table("scope1/trace").column("values").to_pylist())
    assert {500, 4000} <= lengths  # every record length stored
    reconnects = [e for e in events if e["source"] == "pm1" and e["message"].startswith("Reconnecting")]
    assert len(reconnects) >= FLAPS and all(e["level"] == "warning" for e in reconnects)
    assert any(e["source"] == "scope1" and e["message"].startswith("Reconnecting") for e in events)
    assert f"complete, with {recorded.problems} problems" in describe_run(str(summary.run_file))
