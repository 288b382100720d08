"""The run engine in the daemon: one scan at a time, each recorded as its own run.

:class:`ScanService` runs the engine in a thread of its own beside the event
loop. For each scan it

1. resolves the plan's axes and detectors to the hub's instruments;
2. reserves the axes (other clients' moves are refused, naming the scan; released while paused);
3. declares the ``scan/points`` stream (one row per point) and starts a storage actor
   recording it and the monitor streams into the scan's file (:mod:`..storage.scan_file`);
4. runs the plan; points are published as they are measured;
5. writes the outcome (exit status, peak statistics, fit), closes the file, releases the axes.

Control (``pause``, ``resume``, ``stop``, ``abort``, ``status``) is safe from the
event loop: the CLI, the live service's ``scan`` action and the GUI call it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..actors import ActorRef, ActorStatus, Command
from ..errors import CommandError, describe
from ..hub import InstrumentManager, Subscription
from ..hub.reservations import Reservation
from ..log import get_logger
from ..storage import RunInfo, StorageOptions, spawn_storage
from ..storage.scan_file import ScanFileInfo, ScanWriter
from .engine import FAILED, DryRun, RunEngine, ScanObserver, ScanResult, ScanSetup, ScanState
from .instruments import HubAxis, HubDevices
from .plans import PLANS, Plan
from .table import POINTS_STREAM

log = get_logger("arrowdaq.scans")

#: The storage actor of the running scan.
SCAN_STORAGE = "scan_storage"
#: Outcomes of finished scans kept for clients that ask after the end (by scan id).
KEPT_OUTCOMES = 32


def build_plan(name: str, *args: Any, **kwargs: Any) -> Plan:
    """A built-in plan by name: ``build_plan("scan", "hwp", 0, 90, 46)``."""
    if name not in PLANS:
        raise CommandError(f"unknown plan {name!r} (plans: {', '.join(PLANS)})")
    try:
        return PLANS[name](*args, **kwargs)
    except TypeError as exc:
        raise CommandError(f"plan {name!r}: {exc}") from None


class ScanService:
    """See the module docstring. ``record`` are the monitor streams each scan file records
    (glob patterns, as ``[storage] streams``); ``named`` the scans run by name."""

    def __init__(
        self,
        hub: InstrumentManager,
        *,
        options: StorageOptions = StorageOptions(),
        record: Sequence[str] = ("*",),
        run: RunInfo | None = None,
        instruments: Callable[[], Mapping[str, Any]] | None = None,
        settle: float = 0.0,
        reads: int = 1,
        named: Mapping[str, Mapping[str, Any]] | None = None,
        taking: bool = True,
    ) -> None:
        """``taking=False``: scans asked for wait until :meth:`take_scans` (the daemon is still starting)."""
        self.hub = hub
        #: Scans run by name (``[[scans]]``): name → plan, args, kwargs, detectors, settle, reads, doc.
        self.named = dict(named or {})
        self.options = options
        self.record = list(record)
        self.run_template = run or RunInfo()
        self.instruments = instruments or (lambda: {})
        self.settle = settle
        self.reads = reads
        self.engine: RunEngine | None = None
        self.task: asyncio.Future[ScanResult] | None = None
        self.run_file: Path | None = None
        self.last: ScanResult | None = None
        #: The current (or last) scan: its id (the run id of its file) and its points as JSON-able rows.
        self.scan_id: str | None = None
        self.points: list[dict[str, Any]] = []
        self.outcomes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.last_outcome: dict[str, Any] | None = None
        self._changed: asyncio.Event | None = None
        #: Set once the daemon has started (see :meth:`take_scans`); a scan asked for earlier waits for it.
        self._taking = asyncio.Event()
        if taking:
            self._taking.set()
        self._closed = False

    # --- submitting -------------------------------------------------------------------------
    def _engine(self, devices: HubDevices) -> RunEngine:
        return RunEngine(devices.axis, devices.detector, settle=self.settle, reads=self.reads)

    async def dry_run(self, plan: Plan | Any, detectors: Sequence[str] = (), **kw: Any) -> DryRun:
        devices = HubDevices(self.hub, asyncio.get_running_loop())
        engine = self._engine(devices)
        return await asyncio.to_thread(lambda: engine.dry_run(engine.prepare(plan, detectors, **kw)))

    async def submit(
        self,
        plan: Plan | Any,
        detectors: Sequence[str] = (),
        *,
        settle: float | None = None,
        reads: int | None = None,
        name: str | None = None,
        observers: Sequence[ScanObserver] = (),
        client: str = "local",
    ) -> asyncio.Future[ScanResult]:
        """Start a scan; returns a future of its result once the file has been created. ``client``
        (who asked) goes into the event log with the scan's start and end."""
        if not self._taking.is_set():
            self._event(f"scan asked for by {client} while the daemon starts: it begins once started", client)
            await self._taking.wait()
        if self._closed:
            raise CommandError("the daemon is stopping: no new scans")
        if self.task is not None and not self.task.done():
            raise CommandError(f"scan {self.engine.name if self.engine else ''!r} is running: one scan at a time")
        loop = asyncio.get_running_loop()
        devices = HubDevices(self.hub, loop)
        engine = self._engine(devices)
        setup = await asyncio.to_thread(engine.prepare, plan, detectors, settle=settle, reads=reads)
        recorder = _Recorder(self, setup, devices, name or setup.plan.name)
        await recorder.open()
        self.engine, self.run_file = engine, recorder.path
        self.scan_id, self.points = recorder.run.run_id, []
        engine.begin(setup)
        self.task = asyncio.ensure_future(
            asyncio.to_thread(engine.run, None, setup=setup, observers=[recorder, *observers])
        )
        self.task.add_done_callback(lambda t: self._finished(t, recorder))
        self._event(f"{recorder.holder} started by {client}: {recorder.path}", client, file=str(recorder.path))
        return self.task

    async def run(self, plan: Plan | Any, detectors: Sequence[str] = (), **kw: Any) -> ScanResult:
        """Submit and wait for the end."""
        return await (await self.submit(plan, detectors, **kw))

    def _finished(self, task: asyncio.Future[ScanResult], recorder: _Recorder) -> None:
        self._notify()
        if not task.cancelled() and task.exception() is None:
            self.last = result = task.result()
            self.outcomes[recorder.run.run_id] = self.last_outcome = self._outcome(result, recorder.run.run_id)
            while len(self.outcomes) > KEPT_OUTCOMES:
                self.outcomes.popitem(last=False)
            level = "info" if result.exit_status == "success" else "warning"
            self._event(
                f"{recorder.holder} ended: {result.exit_status} ({result.reason}), {result.num_points} points"
                f" in {recorder.path}",
                level=level,
                exit_status=result.exit_status,
                points=result.num_points,
                file=str(recorder.path),
            )
        elif not task.cancelled() and (exc := task.exception()) is not None:
            self._event(f"{recorder.holder} failed: {describe(exc)}", level="error")

    def _event(self, message: str, client: str | None = None, level: str = "info", **details: Any) -> None:
        """Into the event log of the daemon's run file and the live service's ``_events``."""
        if client is not None:
            details["client"] = client
        self.hub.record_event("scan", "scan", message, level, **details)

    # --- control ----------------------------------------------------------------------------
    def _running(self) -> RunEngine:
        if self.engine is None or self.engine.state is ScanState.IDLE:
            raise CommandError("no scan is running")
        return self.engine

    def pause(self, immediate: bool = False, client: str = "local") -> None:
        engine = self._running()
        engine.pause(immediate)
        self._event(f"scan {engine.name!r}: {'immediate ' if immediate else ''}pause asked by {client}", client)

    def resume(self, client: str = "local") -> None:
        engine = self._running()
        engine.resume()
        self._event(f"scan {engine.name!r}: resumed by {client}", client)

    def stop(self, client: str = "local") -> None:
        engine = self._running()
        engine.stop()
        self._event(f"scan {engine.name!r}: stop after this point asked by {client}", client)

    def abort(self, client: str = "local") -> None:
        engine = self._running()
        engine.abort()
        self._event(f"scan {engine.name!r}: aborted by {client}", client, level="warning")

    def status(self) -> dict[str, Any]:
        """The ``scan`` action's ``state``: engine state, progress, the scan's id and file, the last result."""
        out: dict[str, Any] = self.engine.progress() if self.engine is not None else {"state": ScanState.IDLE.value}
        out["scan_id"] = self.scan_id
        out["run_file"] = str(self.run_file) if self.run_file else None
        if self.last_outcome is not None:
            out["last"] = self.last_outcome
        return out

    def _outcome(self, result: ScanResult, scan_id: str) -> dict[str, Any]:
        return {
            "plan": result.plan,
            "exit_status": result.exit_status,
            "reason": result.reason,
            "points": result.num_points,
            "duration_s": result.duration_s,
            "statistics": _finite(result.statistics),
            "fit": _finite(result.fit),
            "run_file": str(result.run_file) if result.run_file else None,
            "scan_id": scan_id,
        }

    async def follow(self, scan_id: str | None, since: int, wait: float) -> dict[str, Any]:
        """The state with the points of scan ``scan_id`` from index ``since`` on; waits up to ``wait`` s
        for something new (a point, a change of state, the end): clients follow a scan without polling
        in a loop and see every point once, in order. A finished scan's outcome is under ``outcome``."""
        current = scan_id is None or scan_id == self.scan_id
        running = self.task is not None and not self.task.done()
        if current and running and len(self.points) <= since and wait > 0:
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
        out = self.status()
        out["since"] = since
        out["points"] = self.points[since:] if current else []
        if scan_id is not None and scan_id in self.outcomes:
            out["outcome"] = self.outcomes[scan_id]
        elif scan_id is not None and not current:
            raise CommandError(f"no scan {scan_id!r} in this daemon (current: {self.scan_id})")
        return out

    def _notify(self) -> None:
        """Wake the clients waiting in :meth:`follow` (on the loop)."""
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _add_point(self, row: dict[str, Any]) -> None:
        self.points.append(_finite(row))
        self._notify()

    def take_scans(self) -> None:
        """The daemon has started (instruments up, its start-up steps done): scans begin."""
        self._taking.set()

    async def close(self) -> None:
        """Abort a running scan and wait for its file to be closed (the daemon is stopping)."""
        self._closed = True
        self._taking.set()  # a scan still waiting for the start is refused
        if self.task is not None and not self.task.done():
            with contextlib.suppress(CommandError):
                self.abort()
            await asyncio.gather(self.task, return_exceptions=True)


class _Recorder:
    """The engine's observer in the daemon: reservations, the points stream, the scan file."""

    def __init__(self, service: ScanService, setup: ScanSetup, devices: HubDevices, name: str) -> None:
        self.service = service
        self.hub = service.hub
        self.setup = setup
        self.devices = devices
        self.loop = asyncio.get_running_loop()
        self.run = RunInfo(
            name=name,
            operator=service.run_template.operator,
            sample=service.run_template.sample,
            notes=service.run_template.notes,
            config=service.run_template.config,
        )
        self.holder = f"scan {name!r} (run {self.run.run_id})"
        self.reservations: list[Reservation] = []
        self.storage: ActorRef | None = None
        self.path: Path | None = None
        self.queue: asyncio.Queue[tuple[pa.RecordBatch, dict[str, Any]] | None] = asyncio.Queue()
        self.publisher: asyncio.Task[None] | None = None

    # --- on the event loop ------------------------------------------------------------------
    async def open(self) -> None:
        """Reserve the axes, declare the stream, start recording (before the engine starts)."""
        self._reserve()
        try:
            # explicit: a continuous run recording "*" does not get it (each scan has its own columns;
            # the scan's own file has the table, the run's event log the file's name: decision 0112)
            self.hub.declare(POINTS_STREAM, self.setup.schema, producer="scan", replace=True, explicit=True)
            plan = self.setup.plan
            units = {ax.name: ax.unit for ax in self.setup.axes} | {d.name: d.unit for d in self.setup.detectors}
            info = ScanFileInfo(
                plan=plan.name,
                args=plan.args,
                axes=[ax.name for ax in self.setup.axes],
                detectors=[d.name for d in self.setup.detectors],
                points_planned=plan.num,
                grid=plan.grid,
                grid_axes=[list(map(float, a)) for a in plan.grid_axes],
                units=units,
                fit=plan.analysis == "malus",
            )
            patterns = self.service.record + ([POINTS_STREAM] if POINTS_STREAM not in self.service.record else [])
            self.storage, self.path = spawn_storage(
                self.hub,
                patterns,
                self.service.options,
                self.run,
                dict(self.service.instruments()),
                name=SCAN_STORAGE,
                writer=lambda *a, **k: ScanWriter(*a, scan=info, **k),
            )
            status = await self.storage.wait_status(ActorStatus.RUNNING, ActorStatus.FAILED, timeout=30.0)
            if status is not ActorStatus.RUNNING:
                raise CommandError(f"scan file {self.path}: {self.storage.last_error}")
        except BaseException:
            self._release()
            if self.storage is not None:
                await self._stop_storage()
            raise
        self.publisher = asyncio.ensure_future(self._publish())

    def _reserve(self) -> None:
        for ax in self.setup.axes:
            if isinstance(ax, HubAxis):
                configured = self.devices.info(ax.instrument).get("settings", {}).get("axes") or [None]
                number = ax.axis if ax.axis is not None else configured[0]
                self.reservations.append(
                    self.hub.reservations.reserve(
                        ax.instrument,
                        number,
                        self.holder,
                        default_axis=number == configured[0],
                        token=self.devices.token,
                    )
                )

    def _release(self) -> None:
        for res in self.reservations:
            self.hub.reservations.release(res)
        self.reservations = []

    async def _publish(self) -> None:
        while (item := await self.queue.get()) is not None:
            batch, row = item
            try:
                await self.hub.publish(POINTS_STREAM, batch)
            except Exception as exc:  # not in the file either: say so loudly (the engine's result keeps it)
                log.error(f"{self.holder}: point not published: {describe(exc)}")
            self.service._add_point(row)

    async def _stop_storage(self) -> None:
        ref = self.storage
        if ref is None:
            return
        for inbox in ref.inboxes:  # what was published until now is written, nothing after: acquisition goes on,
            if isinstance(inbox, Subscription):  # and a stop that drains while storage makes progress must end
                self.hub.unsubscribe(inbox)
        await ref.stop()

    async def _end(self, result: ScanResult) -> None:
        if self.publisher is not None:
            self.queue.put_nowait(None)
            await self.publisher
        try:
            if self.storage is not None and self.storage.status is ActorStatus.RUNNING:
                await self.hub.command(
                    SCAN_STORAGE,
                    Command(
                        "scan_end",
                        {
                            "exit_status": result.exit_status,
                            "reason": result.reason,
                            "statistics": result.statistics,
                            "fit": result.fit,
                        },
                    ),
                    timeout=30.0,
                )
            elif self.storage is not None:
                raise CommandError(f"scan file {self.path}: recording stopped: {self.storage.last_error}")
        finally:
            await self._stop_storage()
            self._release()
        result.run_file = self.path

    # --- ScanObserver (the engine's thread) ---------------------------------------------------
    def start(self, setup: ScanSetup) -> None:
        pass  # everything was opened before the engine started

    def point(self, batch: pa.RecordBatch, row: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (batch, row))

    def state(self, state: ScanState) -> None:
        def apply() -> None:
            if state is ScanState.PAUSED:
                self._release()
            elif state is ScanState.RUNNING and not self.reservations:
                self._reserve()
            self.service._notify()

        if _on_loop(self.loop):
            apply()
        else:
            asyncio.run_coroutine_threadsafe(_call(apply), self.loop).result()

    def end(self, result: ScanResult) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._end(result), self.loop).result()
        except Exception as exc:
            result.run_file = self.path
            if result.exit_status != FAILED:
                result.exit_status, result.reason = FAILED, f"the scan file was not completed: {describe(exc)}"
            raise


def _finite(value: Any) -> Any:
    """NaN (a statistic that does not exist, e.g. the FWHM of an open peak) as None: JSON has no NaN."""
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


async def _call(fn: Callable[[], None]) -> None:
    fn()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
