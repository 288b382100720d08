"""The TOML configuration, validated.

Every error names the file, the key path, the bad value and what is allowed,
e.g. ``lab.toml: instruments[1].poll_hz: Input should be greater than 0 (got -2)``.
Unknown keys are errors. Environment variables ``ARROWDAQ_<SECTION>_<KEY>``
override keys of the ``[run]``, ``[storage]`` and ``[server]`` tables, e.g.
``ARROWDAQ_RUN_DATA_DIR=/data``.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from ..validation import Filter, FlushInterval, Layout, check, error_lines

if TYPE_CHECKING:
    from ..instruments.driver import Driver
    from ..storage import StorageOptions

SIM_PORT = "sim"
#: Highest polling rate accepted (the instrument actor reads ~100,000 readings/s from a zero-latency driver).
MAX_POLL_HZ = 1_000_000.0
#: Actor names the application uses itself: an instrument or processor may not take them.
RESERVED_IDS = ("storage",)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunConfig(Section):
    """Who ran what: recorded in every run file, searchable with ``arrowdaq runs``."""

    #: The run's name: the start of the run file's name and its NeXus ``title``.
    name: str = "run"
    #: Where run files go (relative to the directory the command runs in); ``--data-dir`` overrides it.
    data_dir: Path = Path("data")
    #: Who ran it (``/entry/user/name``).
    operator: str = ""
    #: What was measured (``/entry/sample/name``).
    sample: str = ""
    #: Free text kept with the run (``/entry/notes``).
    notes: str = ""


class StorageConfig(Section):
    """Checked with the storage options' own types (:mod:`arrowdaq.storage.options`)."""

    #: false: no run file (live view and processing only).
    record: bool = True
    #: "nexus" (native HDF5 columns, SWMR) or the original "arrow_ipc" (Arrow IPC bytes, no SWMR).
    layout: Layout = "nexus"
    #: Filter of table-like columns: "gzip", "lzf", an HDF5 filter id, or "none"/false (the
    #: default: no filter, docs/decisions/0021).
    compression: Filter = None
    #: With a compression: false leaves the floating-point columns (noisy readings) unfiltered.
    compress_floats: bool = True
    #: Filter of camera frames, as ``compression`` (default: none).
    image_compression: Filter = None
    #: false: no ``time`` axis (seconds since the start) beside ``timestamp_ns``: a third less to
    #: write for a scalar stream; viewers then plot against the row number.
    time_axis: bool = True
    #: Seconds between flushes at most: what a crash can lose, and how late a reader of the file sees rows.
    flush_interval_s: Annotated[FlushInterval, Field(le=60)] = 1.0
    #: Stream names or glob patterns to record (``"pm1/*"``); ``scan/*`` must be named to be recorded.
    streams: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    #: The stream viewers plot on opening the run file (default: the most informative one).
    default_plot: str | None = None


class InstrumentConfig(Section):
    """One instrument: a driver on a port; its streams are named ``<id>/<stream>``."""

    #: The instrument's name: its streams are ``<id>/<stream>``, commands address it by it.
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    #: A shipped driver (``arrowdaq.instruments.available()``) or a plugin's ``arrowdaq.drivers`` entry point.
    driver: str
    #: A serial device path, a pyserial URL, a VISA resource (contains ``::``) or "sim" (the simulator).
    port: str | None = None
    #: Readings per second: one rate for every stream, or a table ``{ stream = Hz }``; 0 = not polled.
    poll_hz: float | dict[str, float] | None = None
    #: A required instrument that cannot start stops the run; one that fails during it makes the run exit non-zero.
    required: bool = True
    #: The driver's settings, applied at connect and read back, and port settings (``timeout``, ``baudrate``...).
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("poll_hz")
    @classmethod
    def _positive_rates(cls, value: float | dict[str, float] | None) -> float | dict[str, float] | None:
        rates = value.values() if isinstance(value, dict) else [value] if value is not None else []
        for rate in rates:
            if rate < 0:
                raise ValueError(f"polling rates must be >= 0 Hz (0 = not polled), got {rate}")
            if rate > MAX_POLL_HZ:
                raise ValueError(f"polling rates above {MAX_POLL_HZ:,.0f} Hz are beyond any device, got {rate:g}")
        return value


class ProcessorConfig(Section):
    """One processor: reads its inputs, publishes ``<id>/<output>``."""

    #: The processor's name: its outputs are ``<id>/<output>``.
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    #: fft, filter, moving_average, decimate, statistics, trigger, sql, or a plugin's ``arrowdaq.processors`` entry point.
    kind: str
    #: The stream it reads (a name or a list with one name), e.g. ``"pm1/power"``.
    inputs: list[str] = Field(min_length=1)
    #: The kind's parameters, checked before anything starts.
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ServerConfig(Section):
    """The live service (Arrow Flight): on by default, on loopback, on any free port (docs/live-service.md)."""

    #: false: no live service (no GUI, no ``arrowdaq status``/``watch``, no remote scans).
    enabled: bool = True
    #: The address to listen on; anything but loopback needs ``tls_cert``/``tls_key``.
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 = any free port (clients find it in the address file)")
    #: The token every client must send; default: a new random one per run, in the address file.
    token: str | None = Field(None, min_length=16)
    #: PEM certificate: the service becomes ``grpc+tls://`` (give ``tls_key`` too).
    tls_cert: Path | None = None
    #: PEM private key of ``tls_cert``.
    tls_key: Path | None = None
    #: Serve a non-loopback ``host`` without TLS (trusted networks only: the token crosses in clear).
    allow_insecure_remote: bool = False
    #: Open ``do_get`` streams at once, all clients together.
    max_streams: int = Field(64, ge=1, le=4096)
    #: Serve on this Unix socket (``grpc+unix://PATH``) instead of TCP: local clients only, no port.
    socket: Path | None = None

    @model_validator(mode="after")
    def _safe_bind(self) -> ServerConfig:
        from ..live.server import check_bind

        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both, or neither")
        if self.socket is not None:
            if self.tls_cert is not None:
                raise ValueError("socket: a Unix socket is local: give socket or tls_cert/tls_key, not both")
            return self
        if self.enabled:
            try:
                check_bind(self.host, self.tls_cert is not None, self.allow_insecure_remote)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("server: ")) from None
        return self


class ScanConfig(Section):
    """A named scan (``[[scans]]``), run by name: ``arrowdaq scan CONFIG NAME``, ``arrowdaq scan --connect
    NAME``, ``arrowdaq.connect().scan(NAME)``."""

    #: The scan's name (not a plan's name): ``arrowdaq scan CONFIG NAME``.
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    #: The plan it runs (see the scan plans reference).
    plan: str
    #: The plan's arguments: a list in its order, or a table by name.
    args: list[Any] | dict[str, Any] = Field(default_factory=list)
    #: Keyword arguments beside a list of ``args`` (e.g. ``{ snake = true }``).
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: Instruments (or ``instrument/stream``) read at each point.
    detectors: list[str] = Field(default_factory=list)
    #: Seconds to wait after each move before reading.
    settle: float = Field(0.0, ge=0, le=3600)
    #: Readings per detector per point (mean and std kept).
    reads: int = Field(1, ge=1, le=100_000)
    #: A line shown beside the name (GUI plan list, ``describe``).
    doc: str = ""

    @field_validator("detectors", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class SimulationConfig(Section):
    """The simulated optical table behind ``port = "sim"`` instruments."""

    latency_scale: float = Field(1.0, ge=0, le=10, description="1 = real hardware latencies, 0 = none")
    #: Seed of the simulated noise: the same seed gives the same readings.
    seed: int | None = None


class Config(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    instruments: list[InstrumentConfig] = Field(default_factory=list)
    processors: list[ProcessorConfig] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    scans: list[ScanConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        seen: set[str] = set()
        ids = (("instruments", [c.id for c in self.instruments]), ("processors", [c.id for c in self.processors]))
        for kind, items in ids:
            for i, id in enumerate(items):
                if id in RESERVED_IDS:
                    raise ValueError(f"{kind}[{i}].id: {id!r} is reserved (reserved: {', '.join(RESERVED_IDS)})")
                if id in seen:
                    raise ValueError(f"{kind}[{i}].id: {id!r} is used twice (ids name streams: they must be unique)")
                seen.add(id)
        return self


def _env_overrides(data: dict[str, Any], environ: dict[str, str]) -> dict[tuple[str, str], str]:
    """Apply ``ARROWDAQ_<SECTION>_<KEY>`` variables to ``data``; (section, key) → variable name."""
    applied: dict[tuple[str, str], str] = {}
    for section in ("run", "storage", "server"):
        model = Config.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)  # each section is a model
        for key, info in model.model_fields.items():
            variable = f"ARROWDAQ_{section.upper()}_{key.upper()}"
            value: Any = environ.get(variable)
            if value is None:
                continue
            if "list" in str(info.annotation):  # e.g. ARROWDAQ_STORAGE_STREAMS="pm1/*,cam1/*"
                value = [part.strip() for part in value.split(",") if part.strip()]
            data[section] = {**data.get(section, {}), key: value}
            applied[(section, key)] = variable
    return applied


def parse_config(data: dict[str, Any], source: str = "<config>", environ: dict[str, str] | None = None) -> Config:
    """Validate a configuration mapping; ConfigError lists every problem with its key path."""
    data = dict(data)
    bad = non_finite_numbers(data)
    if bad:
        raise ConfigError(
            "\n".join(f"{source}: {where}: expected a finite number, got {value!r}" for where, value in bad)
        )
    from_env = _env_overrides(data, dict(os.environ) if environ is None else environ)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        given = {f"{section}.{key}": f"environment {variable}" for (section, key), variable in from_env.items()}
        raise ConfigError("\n".join(error_lines(exc, source, given=given))) from None
    check_references(config, source)
    return config


def storage_options(config: Config) -> StorageOptions:
    """How the configuration's run files are written (``[storage]`` and ``run.data_dir``)."""
    from ..storage import StorageOptions

    return StorageOptions(
        data_dir=config.run.data_dir,
        layout=config.storage.layout,
        compression=config.storage.compression,
        compress_floats=config.storage.compress_floats,
        image_compression=config.storage.image_compression,
        time_axis=config.storage.time_axis,
        flush_interval=config.storage.flush_interval_s,
        default_plot=config.storage.default_plot,
    )


def read_config_text(path: Path) -> str:
    """The file's text; ConfigError (one line, naming the file) when it is missing, unreadable or not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def non_finite_numbers(data: Any, where: str = "") -> list[tuple[str, float]]:
    """Key paths of NaN and infinite numbers (TOML allows ``nan`` and ``inf``; no setting of a run does)."""
    found: list[tuple[str, float]] = []
    if isinstance(data, float) and not math.isfinite(data):
        found.append((where, data))
    elif isinstance(data, dict):
        for key, value in data.items():
            found += non_finite_numbers(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += non_finite_numbers(value, f"{where}[{i}]")
    return found


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    text = read_config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path), environ)


def check_references(config: Config, source: str) -> None:
    """Drivers, settings, processor kinds and inputs must name things that exist."""
    from ..errors import ArrowDAQError
    from ..instruments.registry import driver_class
    from ..processors.registry import processor_class

    for i, inst in enumerate(config.instruments):
        where = f"{source}: instruments[{i}]"
        try:
            cls = driver_class(inst.driver)
        except ConfigError as exc:
            raise ConfigError(f"{where}.driver: {exc}") from exc
        if inst.port is None and cls.needs_port:
            raise ConfigError(
                f"{where}.port: required for driver {inst.driver!r} "
                f'(a serial path such as /dev/ttyUSB0, a pyserial URL, a VISA resource, or "sim")'
            )
        allowed = cls.setting_names()
        for key in inst.settings:
            if key not in allowed and not cls.is_channel_key(key):
                raise ConfigError(
                    f"{where}.settings.{key}: unknown setting for {inst.driver!r} (settings: {', '.join(allowed) or 'none'})"
                )
        check_setting_values(config, i, cls, source)
        if isinstance(inst.poll_hz, dict):
            names = [s.name for s in cls.streams_for(inst.settings)]
            for stream in inst.poll_hz:
                if stream not in names:
                    raise ConfigError(
                        f"{where}.poll_hz.{stream}: {inst.driver!r} has no stream {stream!r} (streams: {', '.join(names)})"
                    )
    check_shared_ports(config, source)
    check_scans(config, source)
    for i, proc in enumerate(config.processors):
        try:
            processor_class(proc.kind)
        except ArrowDAQError as exc:
            raise ConfigError(f"{source}: processors[{i}].kind: {exc}") from exc


def check_scans(config: Config, source: str) -> None:
    """Each ``[[scans]]`` entry: a unique name that is not a plan's, a known plan, arguments it takes,
    axes and detectors that name configured instruments."""
    from ..errors import CommandError
    from ..scans.plans import PLANS, axis_key
    from ..scans.service import build_plan

    instruments = {inst.id for inst in config.instruments}
    seen: set[str] = set()
    for i, entry in enumerate(config.scans):
        where = f"{source}: scans[{i}]"
        if entry.name in PLANS:
            raise ConfigError(f"{where}.name: {entry.name!r} is a plan's name; give the scan a name of its own")
        if entry.name in seen:
            raise ConfigError(f"{where}.name: {entry.name!r} is used twice")
        seen.add(entry.name)
        if entry.plan not in PLANS:
            raise ConfigError(f"{where}.plan: unknown plan {entry.plan!r} (plans: {', '.join(PLANS)})")
        positional, keywords = named_scan_arguments(entry)
        try:
            plan = build_plan(entry.plan, *positional, **keywords)
        except CommandError as exc:
            raise ConfigError(f"{where}.args: {str(exc).removeprefix(f'plan {entry.plan!r}: ')}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.args: {exc}") from None
        for axis in plan.axes:
            name = axis_key(axis).partition(":")[0]
            if name not in instruments:
                raise ConfigError(
                    f"{where}.args: axis {axis_key(axis)!r} names no instrument (instruments: {', '.join(sorted(instruments))})"
                )
        if not entry.detectors and not plan.detectors:
            raise ConfigError(f'{where}.detectors: the plan reads no detector by itself; name one, e.g. ["pm1"]')
        for j, detector in enumerate(entry.detectors):
            if detector.partition("/")[0] not in instruments:
                raise ConfigError(
                    f"{where}.detectors[{j}]: {detector!r} names no instrument (instruments: {', '.join(sorted(instruments))})"
                )


def named_scan_arguments(entry: ScanConfig) -> tuple[list[Any], dict[str, Any]]:
    """The plan's positional and keyword arguments of a ``[[scans]]`` entry."""
    if isinstance(entry.args, dict):
        return [], {**entry.args, **entry.kwargs}
    return list(entry.args), dict(entry.kwargs)


def check_shared_ports(config: Config, source: str) -> None:
    """Two instruments share a port only on a multidrop bus (Elliptec), each with its own address."""
    from ..instruments.registry import driver_class

    users: dict[str, list[tuple[int, InstrumentConfig, str | None]]] = {}
    for i, inst in enumerate(config.instruments):
        bus = driver_class(inst.driver).port_settings.bus
        if inst.port is None or (inst.port == SIM_PORT and not bus):
            continue  # each non-bus "sim" instrument gets its own simulator
        address = str(inst.settings.get("address", "0")).upper() if bus else None
        for j, other, other_address in users.get(inst.port, []):
            if address is None or other_address is None:
                raise ConfigError(
                    f"{source}: instruments[{i}].port: {inst.port!r} is already used by instruments[{j}] "
                    f"({other.id!r}); only devices on a multidrop bus (Elliptec) share a port"
                )
            if address == other_address:
                raise ConfigError(
                    f"{source}: instruments[{i}].settings.address: {address!r} is already used by "
                    f"instruments[{j}] ({other.id!r}) on port {inst.port!r}; each mount on a bus needs its own address"
                )
        users.setdefault(inst.port, []).append((i, inst, address))


def check_setting_values(config: Config, index: int, cls: type[Driver], source: str) -> None:
    """Build the driver without a port: its own checks (and Python's) run now, not after start-up."""
    import dataclasses

    from ..instruments.driver import PORT_SETTING_NAMES
    from ..sim import OpticalTable
    from .simulators import SimulatedTable

    inst = config.instruments[index]
    where = f"{source}: instruments[{index}].settings"
    settings = SimulatedTable(OpticalTable(latency_scale=0)).driver_settings(inst)
    port = {k: settings.pop(k) for k in list(settings) if k in PORT_SETTING_NAMES}
    if port:
        check(
            type(cls.port_settings),
            dataclasses.asdict(cls.port_settings) | port,
            f"instruments[{index}].settings",
            source,
        )
    try:
        cls.build(None, name=inst.id, **settings)  # declared settings are checked against their validators too
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
