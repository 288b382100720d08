"""The base class of every driver, and the declarations drivers are written in.

A driver reads like a description of the instrument::

    class Newport1830C(Driver):
        driver_name = "newport_1830c"
        port_settings = PortSettings(baudrate=9600, write_termination="\\n", read_termination="\\n", delay=0.1)
        streams = (Stream("power", unit="W", poll_hz=2.0),)

        power = Measurement("D?", parse=parse_power, unit="W", doc="Optical power")
        wavelength = Control("W?", "W{:04.0f}", validator=in_range(400, 1100), unit="nm")

        @command
        def zero(self) -> None:
            self.write("Z1")

Drivers are plain, blocking, synchronous classes: easy to write and to use from
a notebook. The instrument actor runs them in its worker thread and turns their
readings into batches.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from ..data import schemas
from ..errors import CommandError, InstrumentConfigError
from .transports import open_transport
from .transports.base import PortSettings, Transport
from .validators import Validator


@dataclass(frozen=True)
class Stream:
    """A stream a driver produces: ``<instrument id>/<name>``.

    ``read`` names the driver attribute that gives one reading (default: the
    stream's name); ``poll_hz`` is the default polling rate (0 = not polled:
    read on request only).
    """

    name: str
    kind: str = schemas.SCALAR
    unit: str | None = None
    x_unit: str | None = None
    read: str | None = None
    poll_hz: float = 1.0
    long_name: str | None = None

    def schema(self) -> pa.Schema:
        if self.kind == schemas.SCALAR:
            return schemas.scalar_schema(self.unit, long_name=self.long_name)
        if self.kind == schemas.VECTOR:
            return schemas.vector_schema(self.unit, self.x_unit, long_name=self.long_name)
        raise ValueError(
            f"stream {self.name!r}: a {self.kind} stream's schema depends on settings; override declare_streams"
        )


class Control:
    """A device setting declared with its command strings (read with ``get``, write with ``set``).

    ``set`` is a format string filled with the validated value, e.g. ``"W{:04.0f}"``.
    ``parse`` turns the reply text into a value; it raises DeviceErrorReply or
    ProtocolError for error replies and garbage.
    """

    def __init__(
        self,
        get: str | None,
        set: str | None = None,
        *,
        parse: Callable[[str], Any] = float,
        validator: Validator | None = None,
        unit: str | None = None,
        doc: str = "",
    ) -> None:
        self.get_command = get
        self.set_command = set
        self.parse = parse
        self.validator = validator
        self.unit = unit
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, driver: Driver | None, owner: type | None = None) -> Any:
        if driver is None:
            return self
        if self.get_command is None:
            raise CommandError(f"{driver.name}.{self.name} is write-only")
        return self.parse(driver.query(self.get_command))

    def __set__(self, driver: Driver, value: Any) -> None:
        if self.set_command is None:
            raise CommandError(f"{driver.name}.{self.name} is read-only")
        if self.validator is not None:
            value = self.validator(value, f"{driver.name}.{self.name}")
        try:
            command = self.set_command.format(value)
        except (ValueError, TypeError) as exc:
            raise CommandError(f"{driver.name}.{self.name}: cannot send {value!r}: {exc}") from None
        driver.write(command)


class Measurement(Control):
    """A read-only quantity, e.g. ``power = Measurement("D?", parse=parse_power, unit="W")``."""

    def __init__(self, get: str, *, parse: Callable[[str], Any] = float, unit: str | None = None, doc: str = ""):
        super().__init__(get, None, parse=parse, unit=unit, doc=doc)


def command(method: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a driver method as a command the hub may send (``hub.command(id, name, **args)``)."""
    method.__arrowdaq_command__ = True  # type: ignore[attr-defined]
    return method


#: Settings a config may give to override a driver's port defaults.
PORT_SETTING_NAMES = tuple(f.name for f in dataclasses.fields(PortSettings))


class Driver:
    """Base class of instrument drivers; see the module docstring."""

    driver_name: ClassVar[str] = ""
    port_settings: ClassVar[PortSettings] = PortSettings()
    streams: ClassVar[tuple[Stream, ...]] = ()
    #: False for devices reached through a vendor SDK or simulated in-process (no ``port`` in the config).
    needs_port: ClassVar[bool] = True
    #: Seconds ``close()`` may take to leave the device safe (the actor waits this long on stop).
    close_timeout: ClassVar[float] = 5.0

    def __init__(self, transport: Transport | None, *, name: str = "") -> None:
        self.transport = transport
        self.name = name or self.driver_name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # --- declarations ------------------------------------------------------------
    @classmethod
    def declare_streams(cls, settings: dict[str, Any]) -> dict[str, pa.Schema]:
        """Stream name → schema, known before the device is opened (storage needs it)."""
        return {s.name: s.schema() for s in cls.streams}

    @classmethod
    def setting_names(cls) -> list[str]:
        """The keyword settings the constructor accepts (the config's ``[instruments.settings]``).

        Drivers with a port also accept the PortSettings fields (``timeout``,
        ``delay``, ``min_interval``, ``rtscts``...): :meth:`open` applies those to the port.
        """
        params = inspect.signature(cls.__init__).parameters
        names = [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY and p != "name"]
        return names + [p for p in PORT_SETTING_NAMES if p not in names] if cls.needs_port else names

    @classmethod
    def open(cls, port: str, *, name: str = "", **settings: Any) -> Driver:
        """Open ``port`` with this driver's port settings and build the driver (not yet connected).

        ``settings`` are the config's settings: PortSettings fields override the
        driver's port defaults (``timeout=0.2`` for a fast simulator, ``rtscts=False``
        for a cable without handshake lines); the rest go to the constructor.
        """
        port_overrides = {k: settings.pop(k) for k in list(settings) if k in PORT_SETTING_NAMES}
        unknown = [k for k in settings if k not in cls.setting_names()]
        if unknown:
            raise InstrumentConfigError(
                f"{name or cls.driver_name}: unknown setting {unknown[0]!r} for driver {cls.driver_name!r} "
                f"(settings: {', '.join(cls.setting_names())})"
            )
        try:
            port_settings = dataclasses.replace(cls.port_settings, **port_overrides)
        except TypeError as exc:
            raise InstrumentConfigError(f"{name or cls.driver_name}: bad port setting: {exc}") from None
        transport = open_transport(port, port_settings)
        try:
            return cls(transport, name=name, **settings)
        except BaseException:
            transport.close()
            raise

    def active_streams(self) -> tuple[Stream, ...]:
        """The streams this instance produces (drivers whose streams depend on settings override it)."""
        return type(self).streams

    @classmethod
    def stream(cls, name: str) -> Stream:
        for s in cls.streams:
            if s.name == name:
                return s
        raise CommandError(
            f"{cls.driver_name} has no stream {name!r} (streams: {', '.join(s.name for s in cls.streams)})"
        )

    @classmethod
    def controls(cls) -> dict[str, Control]:
        found: dict[str, Control] = {}
        for klass in reversed(cls.__mro__):
            found.update({k: v for k, v in vars(klass).items() if isinstance(v, Control)})
        return found

    def commands(self) -> dict[str, Callable[..., Any]]:
        """Name → bound method of every ``@command``."""
        return {
            name: getattr(self, name)
            for name, attr in inspect.getmembers(type(self))
            if getattr(attr, "__arrowdaq_command__", False)
        }

    # --- lifecycle (blocking; run in the actor's worker thread) ----------------------
    def connect(self) -> None:
        """Check that the device answers and bring it to a known state."""

    def close(self) -> None:
        """Leave the device safe, then release the port."""
        if self.transport is not None:
            self.transport.close()

    def identity(self) -> dict[str, str]:
        """Model, serial number, firmware... as the device reports them."""
        return {"driver": self.driver_name}

    def settings(self) -> dict[str, Any]:
        """The current settings worth recording with the data."""
        return {}

    def read(self, stream: str) -> Any:
        """One reading of ``stream``: a float (scalar) or a RecordBatch (vector, image)."""
        for s in self.active_streams():
            if s.name == stream:
                return getattr(self, s.read or stream)
        names = ", ".join(s.name for s in self.active_streams())
        raise CommandError(f"{self.name} has no stream {stream!r} (streams: {names})")

    # --- talking to the device -------------------------------------------------------
    def write(self, command: str) -> None:
        if self.transport is None:
            raise CommandError(f"{self.name} has no transport")
        self.transport.write(command)

    def query(self, command: str) -> str:
        if self.transport is None:
            raise CommandError(f"{self.name} has no transport")
        return self.transport.query(command)
