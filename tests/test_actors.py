"""The actor runtime: tell/ask, supervision with backoff, failure limit, ordered stop."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from itertools import pairwise

import pytest

from arrowdaq.actors import Actor, ActorRef, ActorStatus, Command, RestartPolicy, Role, Supervisor
from arrowdaq.errors import ActorNotRunning, AskTimeout, CommandError

from .conftest import FAST_RESTARTS


class Counter(Actor):
    async def on_start(self):
        self.count = 0

    async def handle(self, message):
        if message == "boom":
            raise RuntimeError("device fell over")
        if message == "refuse":
            raise CommandError("wavelength 2000 nm is outside 690-1040 nm")
        if message == "hang":
            await asyncio.sleep(3600)  # the thing tested: a handler that never returns
        if message == "thread":
            return await self.blocking(lambda: threading.current_thread().name)
        self.count += 1
        return self.count


async def test_tell_then_ask_replies_in_order():
    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("c", Counter)
    for _ in range(5):
        await ref.tell("inc")
    assert await ref.ask("inc") == 6
    await sup.stop_all()
    assert ref.status is ActorStatus.STOPPED


async def test_blocking_calls_run_in_the_actors_own_thread():
    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("worker", Counter)
    name = await ref.ask("thread")
    assert name.startswith("actor-worker") and name != threading.current_thread().name
    await sup.stop_all()


async def test_an_actor_that_raises_is_restarted_and_reports_each_status():
    events = []
    sup = Supervisor(FAST_RESTARTS)
    sup.add_listener(events.append)
    ref = sup.spawn("c", Counter)
    await ref.wait_status(ActorStatus.RUNNING)
    await ref.ask("inc")
    with pytest.raises(RuntimeError, match="device fell over"):
        await ref.ask("boom")
    await ref.wait_status(ActorStatus.RESTARTING)
    await ref.wait_status(ActorStatus.RUNNING)
    assert await ref.ask("inc") == 1  # a fresh instance: state started over
    seq = [e.status for e in events]
    assert seq == [ActorStatus.RUNNING, ActorStatus.RESTARTING, ActorStatus.STARTING, ActorStatus.RUNNING]
    restarting = events[1]
    assert restarting.error == "RuntimeError: device fell over" and restarting.restarts == 1
    await sup.stop_all()
    # after the recovery, later events carry no old reason (a Stopped with one reads as a failed stop);
    # the last error stays on the ref for status displays
    assert [(e.status, e.error) for e in events[2:]] == [
        (ActorStatus.STARTING, None),
        (ActorStatus.RUNNING, None),
        (ActorStatus.STOPPED, None),
    ]
    assert ref.last_error == "RuntimeError: device fell over"


async def test_after_the_failure_limit_it_is_failed_and_the_others_keep_running():
    sup = Supervisor(FAST_RESTARTS)  # max_failures=3
    bad = sup.spawn("bad", Counter)
    good = sup.spawn("good", Counter)
    for _ in range(3):
        await bad.wait_status(ActorStatus.RUNNING)
        with pytest.raises(RuntimeError):
            await bad.ask("boom")
    await bad.wait_status(ActorStatus.FAILED)
    assert bad.last_error == "RuntimeError: device fell over"
    with pytest.raises(ActorNotRunning, match="'bad' is Failed: RuntimeError: device fell over"):
        await bad.ask("inc")
    assert await good.ask("inc") == 1
    await sup.stop_all()


async def test_backoff_doubles_between_restarts():
    times = []

    class Flaky(Actor):
        async def on_start(self):
            times.append(asyncio.get_running_loop().time())
            raise ConnectionError("port /dev/ttyUSB9 not found")

    policy = RestartPolicy(initial_backoff=0.05, max_backoff=0.2, max_failures=7, window=10)
    sup = Supervisor(policy)
    ref = sup.spawn("flaky", Flaky)
    await ref.wait_status(ActorStatus.FAILED, timeout=5)
    gaps = [b - a for a, b in pairwise(times)]
    assert len(gaps) == 6
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and all(gap >= 0.2 for gap in gaps[2:])
    # capped at max_backoff, not doubled again (0.4, 0.8, 1.6 s). A loaded machine only lengthens a gap, so
    # one gap of the three under 0.4 s shows the cap; one gap alone missed 0.4 s whenever a restart was 0.2 s late
    assert min(gaps[3:]) < 0.4
    assert "port /dev/ttyUSB9 not found" in ref.last_error


async def test_command_errors_go_back_to_the_caller_without_a_restart():
    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("laser", Counter)
    await ref.ask("inc")
    with pytest.raises(CommandError, match="outside 690-1040 nm"):
        await ref.ask("refuse")
    assert ref.status is ActorStatus.RUNNING and ref.restarts == 0
    assert await ref.ask("inc") == 2
    await sup.stop_all()


async def test_ask_to_a_stuck_actor_times_out_clearly():
    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("stuck", Counter)
    await ref.tell("hang")
    with pytest.raises(AskTimeout, match=r"actor 'stuck' \(Running\) did not answer Command\('read'\) within 0.2 s"):
        await ref.ask(Command("read"), timeout=0.2)
    await sup.stop_all(timeout=0.2)  # cancels the stuck handler
    assert ref.status is ActorStatus.STOPPED


async def test_a_timeout_inside_the_handler_is_not_mistaken_for_the_asks_own():
    class Slow(Actor):
        async def handle(self, message):
            raise TimeoutError("device did not answer 'D?' within 1 s")

    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("pm", Slow)
    with pytest.raises(TimeoutError, match="device did not answer") as raised:
        await ref.ask("read", timeout=10)
    assert not isinstance(raised.value, AskTimeout)
    await sup.stop_all()


async def test_ask_to_a_stopped_actor_raises_at_once():
    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("c", Counter)
    await sup.stop_all()
    with pytest.raises(ActorNotRunning, match="'c' is Stopped"):
        await ref.ask("inc", timeout=10)


async def test_stop_is_ordered_sources_processors_sinks():
    stopped = []

    def make(role):
        class Node(Actor):
            async def handle(self, message):
                return None

            async def on_stop(self):
                stopped.append(self.name)

        Node.role = role
        return Node

    sup = Supervisor(FAST_RESTARTS)
    refs = [sup.spawn("storage", make(Role.SINK)), sup.spawn("fft", make(Role.PROCESSOR))]
    refs.append(sup.spawn("pm1", make(Role.SOURCE)))
    for ref in refs:
        await ref.wait_status(ActorStatus.RUNNING)
    await sup.stop_all()
    assert stopped == ["pm1", "fft", "storage"]


async def test_a_slow_drain_never_cuts_the_close_short():
    closes = []

    class Laser(Actor):
        role = Role.SOURCE
        close_timeout = 2.0

        async def handle(self, message):
            await asyncio.sleep(0.5)  # the thing tested: a slow device reply

        async def on_stop(self):
            closes.append("closing shutter")
            await asyncio.sleep(0.4)  # the thing tested: a close slower than the drain's budget
            closes.append("shutter closed")

    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("laser", Laser)
    for _ in range(5):
        await ref.tell("poll")
    await sup.stop_all(timeout=0.1)
    assert closes == ["closing shutter", "shutter closed"]  # once, and to the end
    assert ref.status is ActorStatus.STOPPED


class Recorder(Actor):
    """A sink whose batches take a while each; batch ``"hang"`` never finishes (a disk that stopped answering)."""

    role = Role.SINK

    def __init__(self, handled: list, abandoned: list) -> None:
        self.handled, self.abandoned = handled, abandoned

    async def on_batch(self, stream, batch):
        if batch == "boom":
            raise RuntimeError("a bug")
        if batch == "hang":
            await asyncio.Event().wait()  # the thing tested: a handler that never returns
        await asyncio.sleep(0.01)  # the thing tested: each batch takes a while
        self.handled.append(batch)

    def on_abandoned(self, items, why):
        self.abandoned.append((items, why))


class Queued:
    """An inbox holding what was queued before the stop (the actors' Inbox protocol)."""

    def __init__(self, batches: list) -> None:
        self.items = deque(("s", batch) for batch in batches)

    def pop(self):
        return self.items.popleft() if self.items else None

    def __len__(self) -> int:
        return len(self.items)

    def set_waker(self, event) -> None:
        if event is not None and self.items:
            event.set()


def queued_sink(batches: list) -> tuple[Supervisor, ActorRef, list, list]:
    handled: list = []
    abandoned: list = []
    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("sink", lambda: Recorder(handled, abandoned), role=Role.SINK, start=False)
    ref.attach(Queued(batches))
    sup.start("sink")
    return sup, ref, handled, abandoned


async def test_a_stop_drains_for_as_long_as_the_actor_makes_progress():
    batches = list(range(100))  # 100 x 10 ms: twice the stop timeout below
    sup, ref, handled, abandoned = queued_sink(batches)
    await ref.wait_status(ActorStatus.RUNNING)
    await sup.stop_all(timeout=0.5)
    assert handled == batches and abandoned == []
    assert ref.status is ActorStatus.STOPPED and ref.handled == 100


async def test_a_stop_gives_up_on_a_stuck_actor_and_hands_it_what_was_still_queued():
    sup, ref, handled, abandoned = queued_sink([0, 1, 2, "hang", 4, 5, 6])
    await ref.wait_status(ActorStatus.RUNNING)
    await sup.stop_all(timeout=0.2)
    assert handled == [0, 1, 2]
    assert abandoned == [([("s", 4), ("s", 5), ("s", 6)], "actor 'sink' made no progress for 0.2 s while stopping")]
    assert ref.status is ActorStatus.STOPPED and ref.backlog == 0


async def test_after_a_restart_a_stop_still_waits_for_the_drain():
    """The restarted instance's drain is waited for (it was not: the first instance's end counted as drained)."""

    class QuickToClose(Recorder):
        close_timeout = 0.2

    handled: list = []
    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("sink", lambda: QuickToClose(handled, []), role=Role.SINK, start=False)
    batches = list(range(150))  # 150 x 10 ms: far beyond the close timeout
    ref.attach(Queued(["boom", *batches]))
    sup.start("sink")
    await ref.wait_status(ActorStatus.RESTARTING, timeout=5)
    await ref.wait_status(ActorStatus.RUNNING, timeout=5)
    await sup.stop_all(timeout=0.5)
    assert handled == batches and ref.restarts == 1


async def test_timers_do_not_pile_up_behind_a_slow_handler():
    five_ticks = asyncio.Event()

    class Slow(Actor):
        async def on_start(self):
            self.ticks = 0
            self.every(0.005, "tick")

        async def handle(self, message):
            if message == "tick":
                self.ticks += 1
                await asyncio.sleep(0.05)  # the thing tested: a handler ten times slower than its timer
                if self.ticks == 5:
                    five_ticks.set()
            elif message == "count":
                return self.ticks

    sup = Supervisor(FAST_RESTARTS)
    ref = sup.spawn("slow", Slow)
    await asyncio.wait_for(five_ticks.wait(), 30)  # 250 ms of handling: some fifty intervals have passed
    assert ref.queued <= 1
    assert await ref.ask("count") <= 7  # the ask waited behind at most one tick: never a backlog
    await sup.stop_all()


async def test_a_timer_that_catches_up_acts_on_every_interval():
    """A 1 kHz timer: asyncio wakes in whole milliseconds, so ticks fall due while one waits.
    A handler that takes what is owed accounts for every elapsed interval (no silent shortfall)."""

    class Catcher(Actor):
        async def on_start(self):
            self.done = 0
            self.timer = self.every(0.001, "poll")

        async def handle(self, message):
            if message == "poll":
                self.done += self.timer.take_owed()
                if self.done >= 300:
                    self.reached.set()
            elif message == "stats":
                return self.done, self.timer.ticks, self.timer.owed, self.timer.shortfall

    reached = asyncio.Event()
    sup = Supervisor(FAST_RESTARTS)

    def make():
        actor = Catcher()
        actor.reached = reached
        return actor

    ref = sup.spawn("catcher", make)
    await asyncio.wait_for(reached.wait(), 10)
    done, ticks, owed, shortfall = await ref.ask("stats")
    assert done + owed == ticks  # every elapsed interval is either acted on or still owed
    assert shortfall <= owed / ticks
    await sup.stop_all()


async def test_a_timer_whose_handler_falls_behind_counts_the_shortfall_and_logs_nothing(caplog):
    """A handler slower than its timer: the intervals it did not act on are counted (the timer's
    data: requested against achieved), and the timer raises no warning of its own: a stream's
    rate has one judge, RateWatch (tests/test_rates.py)."""
    behind = asyncio.Event()

    class Slow(Actor):
        async def on_start(self):
            self.timer = self.every(0.001, "tick")

        async def handle(self, message):
            if message == "tick":
                await asyncio.sleep(0.005)  # the thing tested: five intervals per tick, and the owed ones are not taken
                if self.timer.ticks >= 200:
                    behind.set()
            elif message == "timer":
                return (
                    self.timer.shortfall,
                    self.timer.requested_hz,
                    self.timer.achieved_hz(asyncio.get_running_loop().time()),
                )

    sup = Supervisor(FAST_RESTARTS)
    with caplog.at_level("WARNING", logger="arrowdaq"):
        ref = sup.spawn("slow", Slow)
        await asyncio.wait_for(behind.wait(), 10)
        shortfall, requested, achieved = await ref.ask("timer")
    assert shortfall > 0.5 and requested == 1000 and achieved < 500
    assert "timer" not in caplog.text
    await sup.stop_all()


async def test_a_link_lost_after_running_well_is_a_new_outage_and_never_fails():
    """The supervisor judges a failure by how long the instance ran: a device that worked for a
    while and dropped again is a second outage, retried, and never uses up the failure limit."""
    attempts = []
    back_again = asyncio.Event()

    class Device(Actor):
        link_errors = (ConnectionError,)

        async def on_start(self):
            attempts.append(len(attempts))
            if len(attempts) in (1, 2, 4, 5, 6):  # away, back, away again for longer than max_failures
                raise ConnectionError("port /dev/ttyUSB0 went away")
            if len(attempts) == 7:
                back_again.set()

        async def handle(self, message):
            raise ConnectionError("port /dev/ttyUSB0 went away")

    sup = Supervisor(FAST_RESTARTS)  # max_failures=3, max_backoff=0.08 s
    ref = sup.spawn("device", Device)
    await ref.wait_status(ActorStatus.RUNNING)
    assert ref.outages == 1 and ref.restarts == 0
    await asyncio.sleep(2 * FAST_RESTARTS.max_backoff)  # the scenario: it runs well for a while
    await ref.tell("read")
    await asyncio.wait_for(back_again.wait(), 5)
    await ref.wait_status(ActorStatus.RUNNING)
    assert ref.outages == 2 and ref.restarts == 0
    await sup.stop_all()
