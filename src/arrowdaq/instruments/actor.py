"""The instrument actor: one per device. Opens it, polls it, publishes, obeys commands.

Readings of a scalar stream are gathered into preallocated columns
(:class:`~arrowdaq.data.gather.ReadingColumns`) and published as one batch once
``batch_latency`` has passed since the first (20 ms by default) or 10,000 have
gathered. A stream polled faster than a couple of readings per ``batch_latency``
(a fast driver: a DAQ card, a TCP instrument) is read in bursts in the worker
thread, paced to the requested rate, with one hop to the event loop per burst,
not per reading; a slower one (a serial power meter at a few Hz) is read once
per timer tick, as it answers. Drivers that deliver blocks (traces, frames)
return ready batches, published as they come, or None when nothing new has
arrived since the last poll.

Errors while polling:
* the device answered with an error or limit (OVER, ERR, a status code) or with
  garbage: the error shows in the status and the log; no restart. Many garbage
  replies in a row count as a lost link;
* the device timed out, the link dropped or could not be opened: a lost link,
  not a bug. The actor raises, its supervisor shows it as Reconnecting (with the
  reason) and tries again with backoff (capped at 5 s) for as long as the run
  lasts; it records again when the device is back. Lost links never use up the
  failure limit: only faults in the code or the configuration make it Failed.

A command that is refused, garbled or not answered in time goes back to its
caller as a CommandError (and shows in the status); it does not restart the
actor: if the link is really gone, the next poll finds out.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import time
import types
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa

from ..actors import Actor, ActorRef, Command, Role, Timer
from ..data.gather import ReadingColumns
from ..data.schemas import SCALAR
from ..errors import (
    CommandError,
    ConnectionLost,
    DeviceErrorReply,
    DeviceTimeout,
    InstrumentConfigError,
    ProtocolError,
    describe,
)
from ..hub import BATCH_LATENCY, BATCH_ROWS, InstrumentManager
from .capabilities import MOTION_WAITS, Movable, capabilities_of
from .driver import Driver, Stream
from .validators import InRange, Validator


@dataclass(frozen=True)
class Poll:
    stream: str


@dataclass(frozen=True)
class Flush:
    pass


#: Seconds between event-log lines about frames a device dropped (the count is always exact).
DROP_REPORT_EVERY = 5.0

#: Garbage replies in a row after which the link is treated as lost (restart, reconnect).
MAX_GARBAGE_IN_A_ROW = 5
#: A scalar stream polled at more than this many readings per ``batch_latency`` is read in bursts.
BURST_READINGS = 2
#: Seconds a bursting stream may fall behind its rate before the readings owed are given up (and logged).
MAX_BEHIND = 1.0
#: Seconds a burst ahead of its rate sleeps at least: the readings due meanwhile are then read back to back.
#: A sleep costs the thread a wake-up and the GIL twice (tens of µs here); one every 10 µs reading took 65 %
#: of a core at 100 kHz.
NAP = 0.0005
#: Seconds between the ticks that start a bursting stream's bursts (one follows a full batch at once).
BURST_TICK = 0.001


class InstrumentActor(Actor):
    role = Role.SOURCE
    #: A device that is away (unplugged, switched off, silent, sending noise) is waited for, never Failed.
    link_errors = (ConnectionLost, DeviceTimeout, ProtocolError, ConnectionError, TimeoutError)

    def __init__(
        self,
        hub: InstrumentManager,
        make_driver: Callable[[], Driver],
        driver_class: type[Driver],
        streams: tuple[Stream, ...],
        *,
        poll_hz: dict[str, float] | None = None,
        batch_latency: float = BATCH_LATENCY,
        port: str | None = None,
    ) -> None:
        self.hub = hub
        self.make_driver = make_driver
        self.driver_class = driver_class
        self.close_timeout = driver_class.close_timeout
        self._poll_overrides = dict(poll_hz or {})
        #: The streams the settings declared (:meth:`Driver.streams_for`), each declared on the hub.
        self._streams: dict[str, Stream] = {s.name: s for s in streams}
        self.poll_hz = {name: s.poll_hz for name, s in self._streams.items()} | self._poll_overrides
        self.batch_latency = batch_latency
        self.port = port
        self.driver: Driver | None = None
        self._columns: dict[str, ReadingColumns] = {}  # per scalar stream
        self._poll_timers: dict[str, Timer] = {}
        self.readings: dict[str, int] = {}  # readings gathered per stream since the start
        self._next_at: dict[str, float] = {}  # when a bursting stream's next reading is due (monotonic)
        self._missed: dict[str, int] = {}  # readings a burst gave up, not yet counted on the hub
        self._garbage = 0
        self._answered = False
        self.errors = 0
        self._drops_seen = 0  # the driver's dropped_frames already counted (a fresh driver starts at 0)
        self._drops_unreported = 0
        self._drops_reported_at = -float("inf")
        self._drops_stream: str | None = None
        self._motion_executor: ThreadPoolExecutor | None = None
        self._stop_executor: ThreadPoolExecutor | None = None
        self._moving = 0  # moves under way (their waits run in the motion thread)
        self._settings: dict[str, Any] = {}  # re-read after every command that changes the instrument

    async def on_start(self) -> None:
        unknown = sorted(set(self._poll_overrides) - set(self._streams))
        if unknown:
            raise InstrumentConfigError(
                f"{self.name}: poll_hz names unknown stream {unknown[0]!r} (streams: {', '.join(self._streams)})"
            )
        self.driver = await self.blocking(self.make_driver)
        # the instance knows its configured limits, and its class the settings its configuration
        # declared (a scpi driver's controls)
        self.ref.precheck = precheck_for(self.name, self.driver)
        await self.blocking(self.driver.connect_configured)  # connect, then the configured settings, read back
        await self._reread_settings()
        for name, s in self._streams.items():
            if s.kind == SCALAR:
                spec = self.hub.streams.get(self.stream_name(name))
                schema = spec.schema if spec is not None and spec.kind == SCALAR else None
                self._columns[name] = ReadingColumns(name, s.unit, BATCH_ROWS, schema)
        for stream, hz in self.poll_hz.items():
            self.hub.request_rate(self.stream_name(stream), self._requested_rate(stream, hz))
            if hz > 0:  # a burst keeps its own pace: a tick starts the next one (asyncio wakes in whole ms)
                interval = max(1.0 / hz, BURST_TICK) if self._bursts(stream) else 1.0 / hz
                self._poll_timers[stream] = self.every(interval, Poll(stream))
        self.every(self.batch_latency, Flush())

    async def on_stop(self) -> None:
        if self._drops_stream is not None:  # drops counted since the last event-log line
            self._report_drops(self._drops_stream, time.monotonic())
        for executor in (self._motion_executor, self._stop_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
        if self.driver is None:
            return
        try:
            await self._flush()
        finally:
            await self.blocking(self.driver.close)

    def urgent(self, message: Any) -> bool:
        """A Movable's ``stop`` is handled at once, even while a poll or another command is in progress
        (it runs on a thread of its own and the driver sends it ahead of the exchange in flight)."""
        return (
            isinstance(message, Command)
            and message.action == "stop"
            and self.driver is not None
            and isinstance(self.driver, Movable)
        )

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Poll):
            await self._poll(message.stream)
        elif isinstance(message, Flush):
            now = time.monotonic()
            for stream, cols in self._columns.items():
                if cols.n and now - cols.first_at >= self.batch_latency:
                    await self._publish(stream)
        elif isinstance(message, Command):
            return await self._command(message)
        else:
            raise CommandError(f"{self.name}: cannot handle {type(message).__name__}")

    # --- polling ---------------------------------------------------------------------
    def stream_name(self, stream: str) -> str:
        return f"{self.name}/{stream}"

    def _bursts(self, stream: str) -> bool:
        return stream in self._columns and self.poll_hz.get(stream, 0.0) * self.batch_latency > BURST_READINGS

    async def _poll(self, stream: str) -> None:
        assert self.driver is not None
        if self._moving:
            return  # the bus belongs to the move and to a stop; polling resumes when the axis has arrived
        cols = self._columns.get(stream)
        if cols is not None and self._bursts(stream):
            before = cols.n
            try:
                await self._guarded(stream, self._burst, stream, cols)
            finally:
                self.readings[stream] = self.readings.get(stream, 0) + cols.n - before
                missed = self._missed.pop(stream, 0)
                if missed:  # status and the rate alarm (RateWatch: the one judge of rates)
                    self.hub.count_missed(self.stream_name(stream), missed)
                if stream in self._poll_timers:  # the ticks that fell due meanwhile: the burst keeps its own pace
                    self._poll_timers[stream].take_owed()
            if cols.full or (cols.n and time.monotonic() - cols.first_at >= self.batch_latency):
                await self._publish(stream)
            return
        t_before = time.time_ns()
        ok, reading = await self._guarded(stream, self.driver.read, stream)
        if not ok or reading is None:  # an error reply, or a block device with nothing new since the last poll
            return
        if isinstance(reading, pa.RecordBatch):
            self._count_drops(stream)
            await self.hub.publish(self.stream_name(stream), reading)
            return
        if cols is None:
            raise ProtocolError(f"{self.name}: stream {stream!r} gave {type(reading).__name__}, not a batch")
        self.readings[stream] = self.readings.get(stream, 0) + 1
        if cols.append(float(reading), (t_before + time.time_ns()) // 2) or (
            time.monotonic() - cols.first_at >= self.batch_latency
        ):
            await self._publish(stream)

    async def _guarded(self, stream: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """Run a read in the worker thread; an error reply or garbage shows in the status (no restart)."""
        try:
            result = await self.blocking(fn, *args)
        except DeviceErrorReply as exc:
            self.errors += 1
            self.report(f"{stream}: {describe(exc)}")
            return False, None
        except ProtocolError as exc:
            self.errors += 1
            self._garbage += 1
            self.report(f"{stream}: {describe(exc)}")
            if self._garbage >= MAX_GARBAGE_IN_A_ROW:
                raise ConnectionLost(f"{self.name}: {self._garbage} garbled replies in a row; reconnecting") from exc
            return False, None
        self._garbage = 0
        if not self._answered:  # once per connection: the device answers, an outage (if any) is over
            self._answered = True
            self.ref.link_up()
        return True, result

    def _burst(self, stream: str, cols: ReadingColumns) -> None:
        """In the worker thread: read every reading due by the requested rate (one every
        ``1/poll_hz`` s since the stream started), for up to ``batch_latency`` or until the
        columns are full. A driver or machine too slow to keep up is reported, not hidden."""
        assert self.driver is not None  # polling runs while the driver is connected
        read = self.driver.read
        period = 1.0 / self.poll_hz[stream]
        now = time.monotonic()
        end = now + self.batch_latency
        next_at = self._next_at.get(stream, now)
        missed = 0
        try:
            while True:
                behind = now - next_at
                if behind > MAX_BEHIND:  # give up on readings owed for longer than that, and count them
                    skipped = int(behind / period)
                    next_at += skipped * period
                    missed += skipped
                for _ in range(min(int((now - next_at) / period) + 1, cols.capacity - cols.n)):
                    t_before = time.time_ns()
                    value = float(read(stream))
                    next_at += period
                    if cols.append(value, (t_before + time.time_ns()) // 2):
                        return
                now = time.monotonic()
                if now >= end:
                    return
                if next_at > now:  # ahead of the rate: wait for the next reading's time (or a nap)
                    time.sleep(min(end - now, max(next_at - now, NAP)))
                    now = time.monotonic()
        finally:
            self._next_at[stream] = next_at
            self._missed[stream] = self._missed.get(stream, 0) + missed  # counted on the hub by _poll

    async def _publish(self, stream: str) -> None:
        batch = self._columns[stream].take()
        if batch is not None:
            await self.hub.publish(self.stream_name(stream), batch)

    def _requested_rate(self, stream: str, poll_hz: float) -> float | None:
        """Rows per second asked of ``stream``: one per poll, unless the driver says otherwise
        (``rows_per_s(stream)``: a camera's frame rate; None when nothing sets it, e.g. a software trigger)."""
        rows_per_s = getattr(self.driver, "rows_per_s", None)
        if callable(rows_per_s):
            return rows_per_s(stream)
        return poll_hz if poll_hz > 0 else None

    def _count_drops(self, stream: str) -> None:
        """Frames the device lost before we read them (its ``dropped_frames``): counted on the stream,
        and in the event log at most every :data:`DROP_REPORT_EVERY` seconds."""
        total = getattr(self.driver, "dropped_frames", None)
        if not isinstance(total, int) or total <= self._drops_seen:
            return
        new, self._drops_seen = total - self._drops_seen, total
        name = self._drops_stream = self.stream_name(stream)
        self.hub.count_dropped(name, new)
        self._drops_unreported += new
        now = time.monotonic()
        if now - self._drops_reported_at >= DROP_REPORT_EVERY:
            self._report_drops(name, now)

    def _report_drops(self, name: str, now: float) -> None:
        if not self._drops_unreported:
            return
        total = self.hub.streams[name].dropped
        message = (
            f"{name}: {self._drops_unreported} frame(s) dropped by the device ({total} in this run): "
            "the reader is slower than the camera"
        )
        self.hub.record_event(self.name, "lost", message, "warning", stream=name, rows=self._drops_unreported)
        self._drops_unreported, self._drops_reported_at = 0, now

    async def _flush(self) -> None:
        for stream in self._columns:
            await self._publish(stream)

    # --- commands ----------------------------------------------------------------------
    async def _command(self, cmd: Command) -> Any:
        assert self.driver is not None
        if cmd.action == "describe":
            if cmd.args.get("fresh"):  # settings that move by themselves (a camera's frame counters), read now
                await self._reread_settings()
            return await self.blocking(self.describe)
        if cmd.action == "read":
            stream = str(cmd.args.get("stream", ""))
            if stream not in self._streams:
                raise CommandError(f"{self.name}: no stream {stream!r} (streams: {', '.join(self._streams)})")
            return await self._device_call(self.driver.read, stream)
        if cmd.action in ("get", "set"):
            name = str(cmd.args.get("name", ""))
            if cmd.action == "get":
                return await self._device_call(self.driver.get_setting, name)
            await self._logged(cmd, self.driver.set_setting, name, cmd.args.get("value"))
            return await self._device_call(self.driver.get_setting, name)  # what the device took
        commands = self.driver.commands()
        if cmd.action not in commands:
            known = ", ".join(sorted([*commands, "describe", "read", "get", "set"]))
            raise CommandError(f"{self.name}: unknown command {cmd.action!r} (commands: {known})")
        fn = commands[cmd.action]
        movable = isinstance(self.driver, Movable)
        if cmd.action == "stop" and movable:
            # on a thread of its own: never behind a poll in progress (the driver's bus lock orders the bytes)
            if self._stop_executor is None:
                self._stop_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stop-{self.name}")
            return await self._logged(cmd, fn, _on=self._stop_executor, _reread=False, **cmd.args)
        if cmd.action == "wait_motion" and movable:
            return await self._motion(fn, cmd)
        if cmd.action in MOTION_WAITS and movable:
            return await self._logged_motion(fn, cmd)
        if not getattr(fn, "__arrowdaq_changes__", True):  # a query: not in the command log
            return await self._device_call(fn, **cmd.args)
        return await self._logged(cmd, fn, **cmd.args)

    # --- the command log: commands that change the instrument, with the settings after them --------
    async def _logged(
        self,
        cmd: Command,
        fn: Callable[..., Any],
        *args: Any,
        _on: ThreadPoolExecutor | None = None,
        _reread: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Run a command and log it; ``_reread``: it changes settings, read them back first."""
        started, t0 = time.time_ns(), time.monotonic()
        try:
            result = await self._device_call(fn, *args, _on=_on, **kwargs)
        except CommandError as exc:
            await self._record(cmd, started, t0, error=str(exc), reread=_reread)
            raise
        except Exception as exc:
            self._log_command(cmd, started, time.monotonic() - t0, None, describe(exc))
            raise
        await self._record(cmd, started, t0, result=result, reread=_reread)
        return result

    async def _logged_motion(self, fn: Callable[..., Any], cmd: Command) -> Any:
        """A move is logged when it has ended (arrived, stopped or failed); moves change no settings."""
        started, t0 = time.time_ns(), time.monotonic()
        try:
            reply = await self._motion(fn, cmd)
        except CommandError as exc:
            await self._record(cmd, started, t0, error=str(exc), reread=False)
            raise
        if not isinstance(reply, asyncio.Future):
            await self._record(cmd, started, t0, result=reply, reread=False)
            return reply

        def ended(arrival: asyncio.Future[Any]) -> None:
            if arrival.cancelled():
                return
            error = arrival.exception()
            result = None if error is not None else arrival.result()
            text = None if error is None else str(error) if isinstance(error, CommandError) else describe(error)
            self._log_command(cmd, started, time.monotonic() - t0, result, text)

        reply.add_done_callback(ended)
        return reply

    async def _record(
        self, cmd: Command, started: int, t0: float, result: Any = None, error: str | None = None, reread: bool = True
    ) -> None:
        if reread:
            await self._reread_settings()
        self._log_command(cmd, started, time.monotonic() - t0, result, error)

    def _log_command(self, cmd: Command, started: int, duration: float, result: Any, error: str | None) -> None:
        """One line of the command log (the run file's event log, the live ``_events`` stream)."""
        args = ", ".join(f"{k}={v!r}" for k, v in cmd.args.items())
        outcome = f"failed: {error}" if error else "ok" if result is None else f"-> {result!r}"
        self.hub.record_event(
            self.name,
            "command",
            f"{cmd.client}: {self.name}.{cmd.action}({args}) {outcome}",
            "warning" if error else "info",
            client=cmd.client,
            instrument=self.name,
            command=cmd.action,
            args=_json_safe(dict(cmd.args)),
            result=_json_safe(result),
            error=error,
            settings=_json_safe(self._settings),
            started_ns=started,
            duration_s=round(duration, 6),
        )

    async def _reread_settings(self) -> None:
        """Keep the settings snapshot true after a command changed the instrument (a device that cannot
        tell them now shows in the status; the snapshot keeps what was last read)."""
        assert self.driver is not None
        try:
            self._settings = await self.blocking(self.driver.settings)
        except (DeviceErrorReply, ProtocolError, DeviceTimeout) as exc:
            self.report(f"reading the settings: {describe(exc)}")
        except RuntimeError:  # the actor is closing (its worker thread is gone): keep the last snapshot
            pass

    # --- motion: waits run beside the mailbox, so `stop` is never queued behind a move --------------
    async def _motion(self, start: Callable[..., Any], cmd: Command) -> Any:
        """Start the move in the worker thread; the reply is a future of the arrival (``hub.command``
        awaits it) while a thread of its own waits for it and the mailbox stays free for ``stop``."""
        assert self.driver is not None
        args = dict(cmd.args)
        if cmd.action == "wait_motion":
            wait_args = args
        else:
            if not args.pop("wait", True):
                return await self._device_call(start, wait=False, **args)
            await self._device_call(start, wait=False, **args)
            wait_args = {"axis": args["axis"]} if "axis" in args else {}
        if self._motion_executor is None:
            self._motion_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"motion-{self.name}")
        waiting = asyncio.get_running_loop().run_in_executor(
            # a driver with motion commands waits for them (the Movable contract)
            self._motion_executor,
            functools.partial(cast(Movable, self.driver).wait_motion, **wait_args),
        )
        self._moving += 1
        waiting.add_done_callback(self._arrived)
        arrival = asyncio.ensure_future(self._arrival(waiting))
        arrival.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "exception not retrieved"
        return arrival

    def _arrived(self, waiting: asyncio.Future[Any]) -> None:
        self._moving -= 1

    async def _arrival(self, waiting: asyncio.Future[Any]) -> Any:
        try:
            return await waiting
        except TypeError as exc:
            raise CommandError(f"{self.name}: {exc}") from None
        except (DeviceErrorReply, ProtocolError, DeviceTimeout) as exc:
            self.report(exc)
            raise CommandError(f"{self.name}: {describe(exc)}") from exc

    async def _device_call(
        self, fn: Callable[..., Any], *args: Any, _on: ThreadPoolExecutor | None = None, **kwargs: Any
    ) -> Any:
        """Run a driver call (in the worker thread, or ``_on``); a refused or garbled command goes back to
        the caller, not to a restart."""
        try:
            if _on is not None:
                return await asyncio.get_running_loop().run_in_executor(_on, functools.partial(fn, *args, **kwargs))
            return await self.blocking(fn, *args, **kwargs)
        except TypeError as exc:
            raise CommandError(f"{self.name}: {exc}") from None
        except (DeviceErrorReply, ProtocolError, DeviceTimeout) as exc:
            # a refused, garbled or unanswered command is the caller's answer, not a reason to restart:
            # a dead link shows in the next poll, which does restart the actor
            self.report(exc)
            raise CommandError(f"{self.name}: {describe(exc)}") from exc

    def describe(self) -> dict[str, Any]:
        """Identity, settings, capabilities and streams: what storage records and the GUI shows."""
        assert self.driver is not None
        return {
            "id": self.name,
            "driver": self.driver_class.driver_name,
            "port": self.port,
            "identity": self.driver.identity(),
            "settings": self._settings,
            "capabilities": capabilities_of(self.driver),
            "streams": {
                s.name: {"unit": s.unit, "poll_hz": self.poll_hz.get(s.name, 0.0)} for s in self._streams.values()
            },
            "commands": sorted(self.driver.commands()),
            "declaration": self.driver_class.describe(),
            "controls": self.driver.describe_controls(),
        }


def _json_safe(value: Any) -> Any:
    """Plain JSON values (a numpy number becomes a float, anything else unknown its text)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def check_command(driver: Driver | type[Driver], message: Any, instrument: str = "") -> None:
    """Refuse, before it queues, a command the driver does not have, arguments it does not take, or a
    value a declared setting's validator refuses (the validator the device path uses: one check), or
    the instance's own (``@command(validate=...)``: a motor's configured travel; ``driver`` is then
    the instance, or its class before the instance exists, when only the class's checks apply).
    Errors name the instrument (and for a ``set`` the setting: ``laser.wavelength: 2000 is outside 690..1040``)."""
    driver_class = driver if isinstance(driver, type) else type(driver)
    if isinstance(message, Command) and message.action == "set":
        check_set(driver_class, message.args, instrument)
        return
    try:
        check_action(driver, message)
    except CommandError as exc:
        named = not instrument or str(exc).startswith(f"{instrument}: ")  # the instance's own check names it
        raise CommandError(str(exc) if named else f"{instrument}: {exc}") from None


def check_action(driver: Driver | type[Driver], message: Any) -> None:
    if not isinstance(message, Command) or message.action in ("describe", "read", "get"):
        return
    driver_class = driver if isinstance(driver, type) else type(driver)
    fn = getattr(driver_class, message.action, None)
    if fn is None or not getattr(fn, "__arrowdaq_command__", False):
        known = sorted(n for n, a in inspect.getmembers(driver_class) if getattr(a, "__arrowdaq_command__", False))
        raise CommandError(
            f"unknown command {message.action!r} (commands: {', '.join([*known, 'describe', 'read', 'get', 'set'])})"
        )
    check_argument_names(fn, message.action, message.args)
    for key, check in number_arguments(fn).items():
        if message.args.get(key) is not None:
            check(message.args[key], f"{message.action}: {key}")
    for key, name in getattr(fn, "__arrowdaq_validate__", {}).items():
        if message.args.get(key) is not None:
            validator = argument_validator(driver, name, message.args)
            if validator is not None:
                validator(message.args[key], f"{message.action}: {key}")


def argument_validator(driver: Driver | type[Driver], name: str, args: dict[str, Any]) -> Validator | None:
    """What ``@command(validate={arg: name})`` checks ``arg`` with: the declared setting ``name``'s own
    check (its validator, choices and number type), or what the instance's method ``name`` gives for
    these arguments (the configured limits); None when only an instance can tell and there is none yet."""
    driver_class = driver if isinstance(driver, type) else type(driver)
    control = driver_class.declared_control(name)
    if control is not None:
        return control.to_device
    if isinstance(driver, type):
        return None
    method = getattr(driver, name)
    takes = inspect.signature(method).parameters
    validator: Validator | None = method(**{k: v for k, v in args.items() if k in takes})
    return validator


def check_argument_names(fn: Callable[..., Any], action: str, args: dict[str, Any]) -> None:
    """Refuse keys the command does not take, naming them first (a typo also leaves a key missing), and
    missing ones; both messages say what the command takes: ``set_wavelength: unknown argument
    'wavelenght' (set_wavelength takes nm)``."""
    params = list(inspect.signature(fn).parameters.values())[1:]  # after self
    takes = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params)
    takes = f"({action} takes {takes or 'no arguments'})"
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        unknown = [repr(k) for k in args if k not in {p.name for p in params}]
        if unknown:
            s = "s" if len(unknown) > 1 else ""
            raise CommandError(f"{action}: unknown argument{s} {', '.join(unknown)} {takes}")
    try:
        inspect.signature(fn).bind(None, **args)
    except TypeError as exc:
        raise CommandError(f"{action}: {exc} {takes}") from None


#: Any finite number (a validator of decision 0048, without limits).
_ANY_NUMBER = InRange(-sys.float_info.max, sys.float_info.max)


@functools.cache
def number_arguments(fn: Callable[..., Any]) -> dict[str, InRange]:
    """A command's arguments annotated ``float`` (or ``float | None``), with the check their value passes
    before the command queues: ``set_wavelength(nm="abc")`` is refused at once, not after the poll in
    progress. Limits, and ``int`` arguments (axis numbers: the driver names the configured ones), are
    the driver's to check."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation only its module can resolve at run time: the driver checks
        return {}
    checks = {}
    for key, hint in hints.items():
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        if key != "return" and (set(typing.get_args(hint)) - {type(None)} if union else {hint}) == {float}:
            checks[key] = _ANY_NUMBER
    return checks


def check_set(driver_class: type[Driver], args: dict[str, Any], instrument: str = "") -> None:
    """A ``set``'s value through the declared validator: CommandError naming the setting and the limits."""
    name = str(args.get("name", ""))
    control = driver_class.declared_control(name)
    if control is None:
        return
    what = f"{instrument}.{name}" if instrument else name
    if not control.writable:
        raise CommandError(f"{what} is read-only")
    if "value" not in args:
        raise CommandError(f"{what}: set needs a value")
    control.to_device(args["value"], what)


def precheck_for(instrument: str, driver: Driver | type[Driver]) -> Callable[[Any], None]:
    """The check every message to ``instrument`` passes before it queues (the driver's class until the
    instance exists: then the instance's limits too)."""
    return functools.partial(check_command, driver, instrument=instrument)


def spawn_instrument(
    hub: InstrumentManager,
    name: str,
    driver_class: type[Driver],
    make_driver: Callable[[], Driver],
    *,
    settings: dict[str, Any] | None = None,
    poll_hz: dict[str, float] | None = None,
    port: str | None = None,
    batch_latency: float = BATCH_LATENCY,
    start: bool = True,
) -> ActorRef:
    """Declare the streams the instrument's settings give (:meth:`Driver.streams_for`) on the hub,
    once, then spawn its actor; ``start=False``: it starts with ``hub.start(name)``."""
    streams = driver_class.streams_for(settings or {})
    hub.declare_outputs(name, {s.name: s.schema() for s in streams})
    ref = hub.spawn(
        name,
        lambda: InstrumentActor(
            hub, make_driver, driver_class, streams, poll_hz=poll_hz, batch_latency=batch_latency, port=port
        ),
        role=Role.SOURCE,
        start=start,
    )

    ref.precheck = precheck_for(name, driver_class)
    return ref
