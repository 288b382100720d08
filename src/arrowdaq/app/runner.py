"""The application: assemble the actor graph from a configuration, run it, stop it in order.

Order of assembly matters so that nothing is lost and storage knows every stream
before it creates the file:

1. start the simulators for instruments whose port is ``"sim"`` (one shared
   optical table);
2. spawn every instrument, not yet started (which declares its streams), then
   build the processors (which declare their outputs);
3. start storage (a lossless subscriber of the configured streams), then the
   processors, then the instruments;
4. wait until every instrument runs and ask it to describe itself (identity,
   settings) for the run file. A *required* instrument (the default) that cannot
   start stops the run (:class:`InstrumentStartError`, exit status 3); an
   optional one is reported and keeps trying to connect.

During the run a lost device link is retried for as long as the run lasts
(status Reconnecting); an instrument that fails for good raises an alarm. The
run's :attr:`RunSummary.exit_status` says whether every required instrument
was working at the end (:class:`ExitStatus`).

Stop (Ctrl-C, SIGTERM, the duration): instruments first, processors drained,
storage flushed and closed, simulators last. The run file is complete after any
of these.
"""

from __future__ import annotations

import asyncio
import enum
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..actors import ActorRef, ActorStatus, Command, RestartPolicy, Role, StatusEvent
from ..data import unit_of
from ..errors import ArrowDAQError, CommandError, ConfigError, InstrumentStartError, describe
from ..hub import Alarm, InstrumentManager, RateWatch, RunEvent, Subscription
from ..hub.events import LOST
from ..instruments import driver_class, spawn_instrument
from ..instruments.driver import Driver
from ..log import get_logger
from ..processors import build as build_processor
from ..scans.service import ScanService
from ..sim import OpticalTable
from ..storage import RunInfo, spawn_storage
from .config import Config, InstrumentConfig, ProcessorConfig, RunConfig, storage_options
from .simulators import SimulatedTable

if TYPE_CHECKING:
    from ..live.actions import ActionContext
    from ..live.server import LiveService

log = get_logger("arrowdaq.app")

#: How long the run waits for its instruments to come up. A device that answers slowly but steadily takes
#: seconds: a MaiTai answers each query in ~1 s, 0.5 s apart, and its configured wavelength and shutter are
#: set and read back (it took 6-10 s where 5 s was the limit: every laser with settings was refused). One
#: that does not answer times out and shows Reconnecting or Failed, which ends the wait at once.
START_TIMEOUT_S = 60.0

#: Stop requests (Ctrl-C, SIGTERM) that make a hard stop: the drain gives up on what is still queued.
HARD_STOP_REQUESTS = 3


class ExitStatus(enum.IntEnum):
    """The exit status of ``arrowdaq run`` and ``arrowdaq demo`` (documented in the README)."""

    OK = 0  #: complete; every required instrument worked at the end (devices that recovered included)
    ERROR = 1  #: a configuration error (nothing started) or recording failed (the file keeps what was written)
    USAGE = 2  #: a command-line mistake
    INSTRUMENT_START = 3  #: a required instrument could not start; the run was stopped
    INSTRUMENT_LOST = 4  #: a required instrument failed, or its link was still lost, at the end of the run
    #: rows published to a recorded stream are not in the run file, or a processor's input was never processed
    #: (its outputs are short), or the file cannot be read back
    DATA_LOST = 5


@dataclass
class Loss:
    """Rows of a recorded stream that storage reported it could not store (its ``lost`` events)."""

    rows: int = 0
    batches: int = 0
    #: Why, as the latest report says (e.g. "still queued when the stop gave up: ...").
    why: str = ""
    #: The stream the rows are of (a processor's input).
    stream: str = ""

    def add(self, event: RunEvent) -> None:
        """Count one ``lost`` event (its details' rows, batches, reason and stream)."""
        self.rows += int(event.details.get("rows", 0))
        self.batches += int(event.details.get("batches", 0))
        self.why = str(event.details.get("reason", event.message))
        self.stream = str(event.details.get("stream", ""))


@dataclass
class StreamTotals:
    """What one stream carried during the run: a row of the run summary."""

    rows: int
    batches: int
    #: Achieved: rows over the time the instruments were acquiring.
    rows_per_s: float
    unit: str | None
    #: What the producer was asked for (rows/s), when known.
    requested_per_s: float | None = None
    #: Rows the producer lost before publishing (camera frames).
    dropped: int = 0
    #: Readings the producer was asked for and gave up (a fast poll more than a second behind).
    missed: int = 0


@dataclass
class RunSummary:
    """What a run did; printed at the end of ``arrowdaq run`` and ``arrowdaq demo``."""

    run_file: Path | None
    duration_s: float
    streams: dict[str, StreamTotals] = field(default_factory=dict)
    #: Batches a live view skipped (latest delivery: by design, counted).
    drops: dict[str, int] = field(default_factory=dict)
    #: Batches a lossless subscriber (storage, a processor) never got because it had stopped.
    undelivered: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    #: Why recording stopped early (disk full, file gone...); None when the file is complete.
    recording_error: str | None = None
    #: Instruments not working at the end of the run: id → "Failed: why" or "Reconnecting: why".
    instruments_down: dict[str, str] = field(default_factory=dict)
    #: Ids of the instruments the run needs (``required = true``).
    required: set[str] = field(default_factory=set)
    #: Streams that stayed below 80 % of their requested rate for 5 s: name → the alarm's text.
    slow_streams: dict[str, str] = field(default_factory=dict)
    #: Rows of each stream in the run file, read back after it closed (None: not read back).
    stored: dict[str, int] | None = None
    #: Why the run file could not be read back, if it could not.
    unreadable: str | None = None
    #: What storage reported as not stored, per stream (also in the run file's event log when it could write it).
    lost: dict[str, Loss] = field(default_factory=dict)
    #: Input a processor never processed (the stop gave up on it): processor → rows of its input stream. Its
    #: outputs in the run file lack what they would have computed from them.
    unprocessed: dict[str, Loss] = field(default_factory=dict)
    #: Rows each stream published while the run file recorded, when that was not the whole run (a client's
    #: ``record stop``/``record start``: the rows before went to the previous file, those after to none).
    published_while_recording: dict[str, int] | None = None

    def expected_in_file(self, name: str) -> int:
        """The rows of ``name`` the run file should hold: all it published, or those while it recorded."""
        recorded = self.published_while_recording
        return self.streams[name].rows if recorded is None else recorded.get(name, self.streams[name].rows)

    @property
    def required_down(self) -> list[str]:
        return [name for name in self.instruments_down if name in self.required]

    @property
    def not_stored(self) -> dict[str, int]:
        """Recorded streams with rows the run file lacks: stream → rows missing."""
        stored = self.stored or {}
        expected = {name: self.expected_in_file(name) for name in self.streams if name in stored}
        return {name: rows - stored[name] for name, rows in expected.items() if stored[name] < rows}

    @property
    def exit_status(self) -> ExitStatus:
        if self.recording_error:
            return ExitStatus.ERROR
        if self.required_down:
            return ExitStatus.INSTRUMENT_LOST
        if self.not_stored or self.lost or self.unprocessed or self.unreadable:  # unreadable: proves nothing stored
            return ExitStatus.DATA_LOST
        return ExitStatus.OK


def stored_rows(path: Path) -> tuple[dict[str, int] | None, str | None]:
    """Rows per stream in a closed run file (reads only timestamps), or why it cannot be read."""
    from ..storage import open_run

    try:
        with open_run(path) as run:
            return {s.name: s.rows for s in run.summary()}, None
    except (ArrowDAQError, OSError) as exc:
        return None, describe(exc)


class Application:
    """One run of a configuration; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        config_text: str | None = None,
        source: str = "<config>",
        restart: RestartPolicy = RestartPolicy(),
    ) -> None:
        self.config = config
        self.config_text = config_text
        self.source = source  # the file name errors start with
        self.hub = InstrumentManager(restart)
        self.table = SimulatedTable(
            OpticalTable(latency_scale=config.simulation.latency_scale, seed=config.simulation.seed)
        )
        self.run_file: Path | None = None
        self.storage: ActorRef | None = None
        self.instruments: dict[str, Any] = {}
        self.live: LiveService | None = None
        #: The run engine: scans submitted by the live service's ``scan`` action (each scan its own file).
        self.scans: ScanService | None = None
        self._stop = asyncio.Event()
        self._stop_requests = 0  # Ctrl-C presses and SIGTERMs; the third during the stop is a hard stop
        #: Each instrument's last status that says whether it works (Starting and Stopped left out).
        self._health: dict[str, StatusEvent] = {}
        self._lost: dict[str, Loss] = {}  # the run's storage's ``lost`` events, per stream
        self._unprocessed: dict[str, Loss] = {}  # processors' ``lost`` events (input the stop gave up on)
        self._unclosed: str | None = None  # the run file was left unclosed on a disk that does not answer
        #: Rows each stream had published when the run file started and, after a ``record stop``, when it
        #: stopped: the file holds the rows between (empty and None: the whole run).
        self._recorded_from: dict[str, int] = {}
        self._recorded_until: dict[str, int] | None = None
        self._up = False  # every required instrument came up
        self.rates = RateWatch(self.hub)
        self._ended = 0.0  # when the stop began
        self.hub.add_listener(self._on_event)
        self._started = 0.0
        self._acquiring = 0.0  # when the instruments were started

    # --- assembly ----------------------------------------------------------------------
    async def start(self, prepare: Callable[[InstrumentManager], Awaitable[None]] | None = None) -> None:
        """Start everything; ``prepare`` runs once the instruments are up (the demo lights its table), and
        scans asked for in the meantime (the live service is up first) begin only after it."""
        self._started = time.monotonic()
        ports = self.table.serve_all(self.config.instruments)
        for inst in self.config.instruments:
            self._spawn_instrument(inst, ports.get(inst.id, inst.port))  # declares its streams
        processors = self._build_processors()
        if self.config.storage.record:
            self._check_recording()
            self._start_storage()
        if self.config.server.enabled:
            self._start_live()
        self._start_scans()
        for proc, factory in processors:
            self.hub.spawn(proc.id, factory, inputs=proc.inputs, delivery="lossless")
        self._acquiring = time.monotonic()
        for inst in self.config.instruments:
            self.hub.start(inst.id)
        await self._describe_instruments()
        if prepare is not None:
            await prepare(self.hub)
        assert self.scans is not None
        self.scans.take_scans()

    def _check_recording(self) -> None:
        """Before anything is opened: the streams to record exist and the data directory is writable
        (the storage options were checked with the configuration)."""
        for i, pattern in enumerate(self.config.storage.streams):
            if not self.hub.match(pattern):
                raise ConfigError(
                    f"{self.source}: storage.streams[{i}]: {pattern!r} names no stream "
                    f"(streams: {', '.join(sorted(self.hub.streams)) or 'none'})"
                )
        plot = self.config.storage.default_plot
        if plot is not None and not any(plot in self.hub.match(p) for p in self.config.storage.streams):
            raise ConfigError(
                f"{self.source}: storage.default_plot: {plot!r} names no recorded stream"
                f" (streams: {', '.join(sorted(self.hub.streams)) or 'none'}; recorded: storage.streams)"
            )
        data_dir = self.config.run.data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=data_dir, prefix=".arrowdaq-probe-")
            probe.close()
        except OSError as exc:
            raise ConfigError(
                f"{self.source}: run.data_dir: cannot write run files in {str(data_dir)!r}: {exc.strerror or exc}"
            ) from None

    def _build_processors(self) -> list[tuple[ProcessorConfig, Callable[[], Any]]]:
        """Build in dependency order (a processor may read another's output); inputs must name streams."""
        built: list[tuple[ProcessorConfig, Callable[[], Any]]] = []
        waiting = list(enumerate(self.config.processors))
        while waiting:
            ready = [(i, p) for i, p in waiting if all(self.hub.match(pattern) for pattern in p.inputs)]
            if not ready:
                i, proc = waiting[0]
                missing = next(pattern for pattern in proc.inputs if not self.hub.match(pattern))
                raise ConfigError(
                    f"{self.source}: processors[{i}].inputs: {missing!r} names no stream "
                    f"(streams: {', '.join(sorted(self.hub.streams)) or 'none'})"
                )
            for i, proc in ready:
                try:
                    built.append((proc, build_processor(proc.kind, proc.id, self.hub, proc.inputs, proc.params)))
                except ArrowDAQError as exc:
                    raise ConfigError(f"{self.source}: processors[{i}] ({proc.id!r}): {exc}") from None
                waiting.remove((i, proc))
        return built

    def _settings(self, inst: InstrumentConfig) -> dict[str, Any]:
        return self.table.driver_settings(inst)

    def _spawn_instrument(self, inst: InstrumentConfig, port: str | None) -> None:
        """Spawn the instrument's actor, started later (its streams are declared now)."""
        cls = driver_class(inst.driver)
        settings = self._settings(inst)

        def make_driver() -> Driver:
            if cls.needs_port:
                return cls.open(port or "", name=inst.id, **settings)
            return cls.build(None, name=inst.id, **settings)

        poll = (
            inst.poll_hz
            if isinstance(inst.poll_hz, dict)
            else ({s.name: inst.poll_hz for s in cls.streams_for(settings)} if inst.poll_hz is not None else None)
        )
        spawn_instrument(self.hub, inst.id, cls, make_driver, settings=settings, poll_hz=poll, port=port, start=False)

    def _start_live(self) -> None:
        """The live service, before the instruments: clients see them start (``_events``)."""
        from ..live.server import LiveService, ServiceSettings

        cfg = self.config.server
        settings = ServiceSettings(
            host=cfg.host,
            port=cfg.port,
            token=cfg.token,
            tls_cert=cfg.tls_cert,
            tls_key=cfg.tls_key,
            allow_insecure_remote=cfg.allow_insecure_remote,
            max_streams=cfg.max_streams,
            socket=cfg.socket,
        )
        self.live = LiveService(self.hub, settings, daemon=self)
        self.live.instruments = self.instruments  # describe() of each instrument, filled below
        try:
            self.live.start()
        except ConfigError as exc:
            self.live = None
            raise ConfigError(f"{self.source}: {exc}") from None

    def _start_scans(self) -> None:
        """The run engine, and the live service's ``scan`` action on it (plans and their forms in ``describe``)."""
        from ..scans.actions import plan_parameters, scan_action

        cfg, run = self.config.storage, self.config.run
        self.scans = ScanService(
            self.hub,
            options=storage_options(self.config),
            record=cfg.streams,
            run=RunInfo(
                operator=run.operator,
                sample=run.sample,
                notes=run.notes,
                config=self.config_text if self.config_text is not None else self.config.model_dump(mode="json"),
            ),
            instruments=lambda: self.instruments,
            named={entry.name: entry.model_dump() for entry in self.config.scans},
            taking=False,  # until start() is done
        )
        scans = self.scans

        async def scan(ctx: ActionContext, body: dict[str, Any]) -> Any:
            return await scan_action(scans, body, client=ctx.client)

        if self.live is not None:
            self.live.add_action(
                "scan",
                scan,
                describe=lambda: {
                    "plans": plan_parameters(scans.named),
                    "scans": list(scans.named.values()),
                    "scan": scans.status(),
                },
            )

    def recording_state(self) -> dict[str, Any]:
        """For the live service's ``status``, ``describe`` and ``record``."""
        storage = self.storage
        size = None
        if self.run_file is not None:
            try:  # the file as it is on disk now (the GUI's recording panel shows it growing)
                size = self.run_file.stat().st_size
            except OSError:
                size = None
        return {
            "recording": storage is not None and storage.status.alive,
            "file": str(self.run_file) if self.run_file is not None else None,
            "size_bytes": size,
            "status": storage.status.value if storage is not None else None,
            "error": storage.last_error if storage is not None else None,
        }

    async def start_recording(self, client: str = "local", **meta: str) -> dict[str, Any]:
        """A new run file (the live service's ``record start``); name, operator, sample and notes default
        to the configuration's ``[run]``."""
        if self.storage is not None and self.storage.status.alive:
            raise CommandError(f"already recording to {self.run_file}; stop first")
        self._release_storage()
        try:
            self._check_recording()
        except ConfigError as exc:
            raise CommandError(f"cannot record: {exc}") from None
        run = self.config.run.model_copy(update={k: str(v) for k, v in meta.items() if v is not None})
        self._recorded_from, self._recorded_until = self._published_rows(), None  # no await until subscribed
        self._start_storage(run)
        if self.instruments:
            await self.hub.command("storage", Command("instrument_info", dict(self.instruments)), timeout=10.0)
        self.hub.record_event("storage", "record", f"recording started by {client}: {self.run_file}", client=client)
        return self.recording_state()

    async def stop_recording(self, client: str = "local") -> dict[str, Any]:
        """Close the run file (the live service's ``record stop``); acquisition goes on."""
        if self.storage is None or not self.storage.status.alive:
            raise CommandError("not recording")
        self.hub.record_event("storage", "record", f"recording stopped by {client}: {self.run_file}", client=client)
        self._recorded_until = self._published_rows()
        self._release_storage(stopping=True)  # what was published until now is written, nothing after it
        await self.storage.stop()
        return self.recording_state()

    def _published_rows(self) -> dict[str, int]:
        return {name: spec.meter.rows for name, spec in self.hub.streams.items()}

    def _release_storage(self, stopping: bool = False) -> None:
        """The stopped (or ``stopping``) storage's subscription leaves the hub (it would count every batch as
        dropped). Before a stop while acquisition goes on, so that its drain ends: it writes what is queued."""
        if self.storage is not None and (stopping or not self.storage.status.alive):
            for inbox in self.storage.inboxes:
                if isinstance(inbox, Subscription):
                    self.hub.unsubscribe(inbox)

    def _start_storage(self, run: RunConfig | None = None) -> None:
        cfg, run = self.config.storage, run or self.config.run
        options = storage_options(self.config)
        info = RunInfo(
            name=run.name,
            operator=run.operator,
            sample=run.sample,
            notes=run.notes,
            config=self.config_text if self.config_text is not None else self.config.model_dump(mode="json"),
        )
        self.storage, self.run_file = spawn_storage(self.hub, cfg.streams, options, info)

    async def _describe_instruments(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait for every instrument to come up (all at once); record identity and settings in the run file.

        A required instrument that does not come up stops the run here.
        """
        cannot_start: list[tuple[str, str]] = []

        async def describe_one(inst: InstrumentConfig) -> None:
            ref = self.hub.actor(inst.id)
            try:
                await ref.wait_status(
                    ActorStatus.RUNNING, ActorStatus.FAILED, ActorStatus.RECONNECTING, timeout=timeout
                )
            except TimeoutError:
                pass
            if ref.status is not ActorStatus.RUNNING:
                where = f"instrument {inst.id!r} ({inst.driver} on {inst.port})"
                why = ref.last_error or f"still {ref.status.value} after {timeout:g} s"
                if inst.required:
                    cannot_start.append((inst.id, f"required {where} cannot start: {why}"))
                else:
                    keeps = "; it keeps trying to connect" if ref.status.alive else ""
                    self.hub.alarm(inst.id, f"optional {where} is {ref.status.value}: {why}{keeps}")
                return
            try:
                self.instruments[inst.id] = await self.hub.command(inst.id, "describe", timeout=timeout)
            except ArrowDAQError as exc:
                log.warning(f"instrument {inst.id!r}: cannot describe: {describe(exc)}")

        await asyncio.gather(*(describe_one(inst) for inst in self.config.instruments))
        if cannot_start:
            where = f" (run file: {self.run_file})" if self.run_file is not None else ""
            for name, line in cannot_start:
                self.hub.alarm(name, line, level="error")
            raise InstrumentStartError(
                "; ".join(line for _, line in cannot_start) + f"; the run was stopped{where}. "
                "Set required = false in an instrument's entry to run without it."
            )
        self._up = True
        if self.storage is not None and self.instruments:
            try:  # instrument ids are data here, never keyword arguments
                await self.hub.command("storage", Command("instrument_info", dict(self.instruments)), timeout=10.0)
            except ArrowDAQError as exc:
                log.warning(f"the run file lacks the instruments' identities: {describe(exc)}")

    def _on_event(self, event: StatusEvent | Alarm | RunEvent) -> None:
        """Follow each instrument's health (an instrument that fails for good raises an alarm) and
        what the run's storage could not store."""
        if isinstance(event, RunEvent) and event.kind == LOST and event.source == "storage":
            self._lost.setdefault(str(event.details.get("stream", "?")), Loss()).add(event)
            return
        if isinstance(event, RunEvent) and event.kind == LOST and "processor" in event.details:
            self._unprocessed.setdefault(str(event.details["processor"]), Loss()).add(event)
            return
        if isinstance(event, RunEvent) and event.source == "storage" and "unclosed" in event.details:
            self._unclosed = event.message  # its worker thread hangs in HDF5: reading the file back would too
            return
        if not isinstance(event, StatusEvent) or event.status in (ActorStatus.STARTING, ActorStatus.STOPPED):
            return
        inst = next((i for i in self.config.instruments if i.id == event.actor), None)
        if inst is None:
            return
        self._health[inst.id] = event
        if event.status is ActorStatus.FAILED and self._up and not self._stop.is_set():
            needed = "required: the run will end with exit status 4" if inst.required else "optional: the run goes on"
            self.hub.alarm(inst.id, f"instrument {inst.id!r} failed ({needed}): {event.error}", level="error")

    # --- running ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ctrl-C or SIGTERM. The first starts the ordered stop, which writes everything acquired while
        storage makes progress. During it, a second only says what the stop waits for (an impatient
        double press loses nothing); the third and later are a hard stop of the drains the stop waits
        for at that moment: what they still have queued is given up on, counted as lost and reported,
        and the run file is closed (decision 0201). Drains yet to come are not cut: presses before
        storage's turn lose nothing."""
        self._stop_requests += 1
        if self._stop_requests == 1:
            self._stop.set()
            return
        waiting = ", ".join(
            f"{name}: {ref.backlog} queued" for name, ref in self.hub.supervisor.actors.items() if ref.backlog
        )
        if self._stop_requests < HARD_STOP_REQUESTS:
            more = HARD_STOP_REQUESTS - self._stop_requests
            log.warning(
                f"already stopping: the run file is being completed ({waiting or 'closing'}); "
                f"press Ctrl-C {more} more time(s) to give up on what is still queued (it is counted as lost)"
            )
            return
        why = f"the stop was cut short by {self._stop_requests} stop requests (Ctrl-C)"
        given_up = self.hub.supervisor.give_up(why)
        if given_up:
            log.warning(f"{why}: giving up on what is still queued for {', '.join(given_up)} ({waiting or 'nothing'})")
        else:
            log.warning("already stopping: no drain to give up on now; the run file is being closed, please wait")

    async def run(
        self,
        duration: float | None = None,
        on_tick: Callable[[], None] | None = None,
        on_stopping: Callable[[], Awaitable[None]] | None = None,
        prepare: Callable[[InstrumentManager], Awaitable[None]] | None = None,
    ) -> RunSummary:
        """Start, run until ``duration`` s (counted from the start), Ctrl-C or SIGTERM; stop in order.

        A stop request during start-up is honoured at once. The signal handlers
        stay until the run file is closed: a second Ctrl-C cannot cut the stop
        short, a third gives up on what is still queued (:meth:`request_stop`). ``on_stopping`` runs before the actors are stopped; ``prepare``: see :meth:`start`.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        end = None if duration is None else time.monotonic() + duration
        try:
            if await self._until_stopped(self.start(prepare), end):
                while not self._stop.is_set():
                    left = 0.25 if end is None else min(0.25, end - time.monotonic())
                    if left <= 0:
                        break
                    try:
                        await asyncio.wait_for(self._stop.wait(), left)
                    except TimeoutError:
                        pass
                    self.rates.check()
                    if on_tick is not None:
                        on_tick()
        finally:
            self._ended = time.monotonic()
            try:
                if on_stopping is not None:
                    await on_stopping()
                await self._describe_final()
                await self.stop()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        return self.summary()

    async def _until_stopped(self, work: Awaitable[None], end: float | None) -> bool:
        """Run ``work`` unless a stop request or the end time comes first; True if it completed."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        timeout = None if end is None else max(0.0, end - time.monotonic())
        try:
            await asyncio.wait({task, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        task.result()  # a configuration error surfaces here
        return True

    async def stop(self) -> None:
        if self.scans is not None:  # a running scan is aborted: its file closed, its axes released
            await self.scans.close()
        if self.live is not None:  # first: clients' streams end, and shutdown never waits on a client
            await self.live.stop()

        async def after(role: Role) -> None:
            if role is Role.SOURCE:
                await self._record_rates()  # the instruments' rows are final; storage still records

        await self.hub.stop(after=after)
        self.table.stop()

    def _acquired_s(self) -> float:
        if not self._acquiring:
            return 0.0
        return (self._ended or time.monotonic()) - self._acquiring

    def stream_rates(self) -> dict[str, dict[str, Any]]:
        """Per stream: rows published, achieved and requested rows/s, rows the producer dropped."""
        acquired = max(self._acquired_s(), 1e-9)
        return {
            name: {
                "rows": spec.meter.rows,
                "achieved_per_s": spec.meter.rows / acquired,
                "requested_per_s": spec.requested_rate,
                "dropped": spec.dropped,
                "missed": spec.missed,
            }
            for name, spec in self.hub.streams.items()
        }

    async def _describe_final(self, timeout: float = 2.0) -> None:
        """Before the ordered stop: each running instrument's settings as they are now (a camera's
        dropped frames), for the run file. One that does not answer keeps its start-up description.
        Also when the run was stopped during start-up: an instrument that recorded is never missing
        from the file because another was still starting."""

        async def final(name: str) -> None:
            try:
                self.instruments[name] = await self.hub.command(name, "describe", timeout=timeout, fresh=True)
            except ArrowDAQError:
                pass

        running = [
            inst.id
            for inst in self.config.instruments
            if (ref := self.hub.supervisor.actors.get(inst.id)) is not None and ref.status is ActorStatus.RUNNING
        ]
        await asyncio.gather(*(final(name) for name in running))

    async def _record_rates(self) -> None:
        """Once the instruments stopped: their streams' rows, achieved vs requested rates and dropped
        rows go into the run file with the instruments' descriptions."""
        if self.storage is None or not self.storage.status.alive or not self.instruments:
            return
        rates = self.stream_rates()
        for name, info in self.instruments.items():
            for stream, numbers in info.setdefault("streams", {}).items():
                numbers.update(rates.get(f"{name}/{stream}", {}))
        try:  # told, not asked: queued ahead of the stop, and a stop never waits on a busy storage for it
            await self.storage.tell(Command("instrument_info", dict(self.instruments)))
        except ArrowDAQError as exc:
            log.warning(f"the run file lacks the achieved rates: {describe(exc)}")

    def summary(self) -> RunSummary:
        status = self.hub.status()
        summary = RunSummary(self.run_file, time.monotonic() - self._started if self._started else 0.0)
        rates = self.stream_rates()
        for name, s in status["streams"].items():
            unit = unit_of(self.hub.streams[name].schema)
            r = rates[name]
            summary.streams[name] = StreamTotals(
                s["rows"], s["batches"], r["achieved_per_s"], unit, r["requested_per_s"], r["dropped"], r["missed"]
            )
        summary.slow_streams = dict(self.rates.slow)
        if self._recorded_from or self._recorded_until is not None:
            until = self._recorded_until or {name: s.rows for name, s in summary.streams.items()}
            summary.published_while_recording = {
                name: max(0, rows - self._recorded_from.get(name, 0)) for name, rows in until.items()
            }
        summary.lost = {name: Loss(loss.rows, loss.batches, loss.why) for name, loss in self._lost.items()}
        summary.unprocessed = {
            name: Loss(loss.rows, loss.batches, loss.why, loss.stream) for name, loss in self._unprocessed.items()
        }
        if self._unclosed is not None:
            summary.unreadable = self._unclosed
        elif self.run_file is not None and self.storage is not None and not self.storage.status.alive:
            summary.stored, summary.unreadable = stored_rows(self.run_file)
        for name, s in status["subscribers"].items():
            if s["drops"]:
                (summary.drops if s["delivery"] == "latest" else summary.undelivered)[name] = s["drops"]
        for name, a in status["actors"].items():
            summary.statuses[name] = a["status"]
            if a["error"]:
                summary.errors[name] = a["error"]
        if self.storage is not None and self.storage.status is ActorStatus.FAILED:
            summary.recording_error = self.storage.last_error
        summary.required = {i.id for i in self.config.instruments if i.required}
        for inst in self.config.instruments:
            health = self._health.get(inst.id)
            if health is not None and health.status in (ActorStatus.FAILED, ActorStatus.RECONNECTING):
                summary.instruments_down[inst.id] = f"{health.status.value}: {health.error}"
        return summary
