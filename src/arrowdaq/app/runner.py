"""The application: assemble the actor graph from a configuration, run it, stop it in order.

Order of assembly matters so that nothing is lost and storage knows every stream
before it creates the file:

1. start the simulators for instruments whose port is ``"sim"`` (one shared
   optical table);
2. declare every instrument's streams, then build the processors (which
   declare their outputs);
3. start storage (a lossless subscriber of the configured streams), then the
   processors, then the instruments;
4. ask each instrument to describe itself (identity, settings) for the run file.

Stop (Ctrl-C, SIGTERM, the duration): instruments first, processors drained,
storage flushed and closed, simulators last. The run file is complete after any
of these.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..actors import ActorRef, ActorStatus, Command, RestartPolicy
from ..data import unit_of
from ..errors import ArrowDAQError, ConfigError, describe
from ..hub import InstrumentManager
from ..instruments import driver_class, spawn_instrument
from ..instruments.driver import Driver
from ..log import get_logger
from ..processors import build as build_processor
from ..sim import OpticalTable
from ..storage import RunInfo, StorageOptions, spawn_storage
from .config import Config, InstrumentConfig, ProcessorConfig
from .simulators import SimulatedTable

log = get_logger("arrowdaq.app")


@dataclass
class StreamSummary:
    rows: int
    batches: int
    rows_per_s: float
    unit: str | None


@dataclass
class RunSummary:
    """What a run did; printed at the end of ``arrowdaq run`` and ``arrowdaq demo``."""

    run_file: Path | None
    duration_s: float
    streams: dict[str, StreamSummary] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    #: Why recording stopped early (disk full, file gone...); None when the file is complete.
    recording_error: str | None = None


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
        self._stop = asyncio.Event()
        self._started = 0.0
        self._acquiring = 0.0  # when the instruments were started

    # --- assembly ----------------------------------------------------------------------
    async def start(self) -> None:
        self._started = time.monotonic()
        for inst in self.config.instruments:
            cls = driver_class(inst.driver)
            for stream, schema in cls.declare_streams(self._settings(inst)).items():
                self.hub.declare(f"{inst.id}/{stream}", schema, producer=inst.id)
        processors = self._build_processors()
        if self.config.storage.record:
            self._check_recording()
        ports = self.table.serve_all(self.config.instruments)
        if self.config.storage.record:
            self._start_storage()
        for proc, factory in processors:
            self.hub.spawn(proc.id, factory, inputs=proc.inputs, policy="lossless")
        self._acquiring = time.monotonic()
        for inst in self.config.instruments:
            self._start_instrument(inst, ports.get(inst.id, inst.port))
        await self._describe_instruments()

    def _check_recording(self) -> None:
        """Before anything is opened: the streams to record exist and the data directory is writable."""
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

    def _start_instrument(self, inst: InstrumentConfig, port: str | None) -> None:
        cls = driver_class(inst.driver)
        settings = self._settings(inst)

        def make_driver() -> Driver:
            if cls.needs_port:
                return cls.open(port or "", name=inst.id, **settings)
            return cls.build(None, name=inst.id, **settings)

        poll = (
            inst.poll_hz
            if isinstance(inst.poll_hz, dict)
            else ({s: inst.poll_hz for s in cls.declare_streams(settings)} if inst.poll_hz is not None else None)
        )
        spawn_instrument(self.hub, inst.id, cls, make_driver, settings=settings, poll_hz=poll, port=port)

    def _start_storage(self) -> None:
        cfg, run = self.config.storage, self.config.run
        options = StorageOptions(
            data_dir=run.data_dir,
            layout=cfg.layout,
            flush_interval=cfg.flush_interval_s,
            default_plot=cfg.default_plot,
            **({"compression": cfg.compression} if cfg.compression is not None else {}),
        )
        info = RunInfo(
            name=run.name,
            operator=run.operator,
            sample=run.sample,
            notes=run.notes,
            config=self.config_text if self.config_text is not None else self.config.model_dump(mode="json"),
        )
        self.storage, self.run_file = spawn_storage(self.hub, cfg.streams, options, info)

    async def _describe_instruments(self, timeout: float = 5.0) -> None:
        """Identity and settings of every instrument that came up (all at once), for the run file."""

        async def describe_one(inst: InstrumentConfig) -> None:
            ref = self.hub.actor(inst.id)
            try:
                await ref.wait_status(ActorStatus.RUNNING, ActorStatus.FAILED, timeout=timeout)
            except TimeoutError:
                pass
            if ref.status is not ActorStatus.RUNNING:
                log.warning(
                    f"instrument {inst.id!r} ({inst.driver} on {inst.port}) is {ref.status.value}: {ref.last_error}"
                )
                return
            try:
                self.instruments[inst.id] = await self.hub.command(inst.id, "describe", timeout=timeout)
            except ArrowDAQError as exc:
                log.warning(f"instrument {inst.id!r}: cannot describe: {describe(exc)}")

        await asyncio.gather(*(describe_one(inst) for inst in self.config.instruments))
        if self.storage is not None and self.instruments:
            try:  # instrument ids are data here, never keyword arguments
                await self.hub.command("storage", Command("instrument_info", dict(self.instruments)), timeout=10.0)
            except ArrowDAQError as exc:
                log.warning(f"the run file lacks the instruments' identities: {describe(exc)}")

    # --- running ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        if self._stop.is_set():
            log.warning("already stopping: the run file is being completed, please wait")
        self._stop.set()

    async def run(
        self,
        duration: float | None = None,
        on_tick: Callable[[], None] | None = None,
        on_stopping: Callable[[], Awaitable[None]] | None = None,
    ) -> RunSummary:
        """Start, run until ``duration`` s (counted from the start), Ctrl-C or SIGTERM; stop in order.

        A stop request during start-up is honoured at once. The signal handlers
        stay until the run file is closed: a second Ctrl-C cannot cut the stop
        short. ``on_stopping`` runs before the actors are stopped.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        end = None if duration is None else time.monotonic() + duration
        try:
            if await self._until_stopped(self.start(), end):
                while not self._stop.is_set():
                    left = 0.25 if end is None else min(0.25, end - time.monotonic())
                    if left <= 0:
                        break
                    try:
                        await asyncio.wait_for(self._stop.wait(), left)
                    except TimeoutError:
                        pass
                    if on_tick is not None:
                        on_tick()
        finally:
            try:
                if on_stopping is not None:
                    await on_stopping()
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
        await self.hub.stop()
        self.table.stop()

    def summary(self) -> RunSummary:
        status = self.hub.status()
        summary = RunSummary(self.run_file, time.monotonic() - self._started if self._started else 0.0)
        acquired = time.monotonic() - self._acquiring if self._acquiring else 0.0
        for name, s in status["streams"].items():
            unit = unit_of(self.hub.streams[name].schema)
            summary.streams[name] = StreamSummary(s["rows"], s["batches"], s["rows"] / max(acquired, 1e-9), unit)
        for name, s in status["subscribers"].items():
            if s["drops"]:
                summary.drops[name] = s["drops"]
        for name, a in status["actors"].items():
            summary.statuses[name] = a["status"]
            if a["error"]:
                summary.errors[name] = a["error"]
        if self.storage is not None and self.storage.status is ActorStatus.FAILED:
            summary.recording_error = self.storage.last_error
        return summary
