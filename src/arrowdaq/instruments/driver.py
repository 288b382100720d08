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
import math
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from ..data import schemas
from ..errors import CommandError, DeviceErrorReply, InstrumentConfigError, InstrumentError, ProtocolError
from .transports import open_transport
from .transports.base import PortSettings, Transport
from .validators import Validator, describe_validator


@dataclass(frozen=True)
class Stream:
    """A stream a driver produces: ``<instrument id>/<name>``.

    ``read`` names the driver attribute that gives one reading (default: the
    stream's name); ``poll_hz`` is the default polling rate (0 = not polled:
    read on request only). An image stream gives its frames' ``shape`` and pixel ``dtype``.
    """

    name: str
    kind: str = schemas.SCALAR
    unit: str | None = None
    x_unit: str | None = None
    read: str | None = None
    poll_hz: float = 1.0
    long_name: str | None = None
    shape: tuple[int, ...] | None = None
    dtype: str = "uint16"

    def schema(self) -> pa.Schema:
        if self.kind == schemas.SCALAR:
            return schemas.scalar_schema(self.unit, long_name=self.long_name)
        if self.kind == schemas.VECTOR:
            return schemas.vector_schema(self.unit, self.x_unit, long_name=self.long_name)
        if self.kind == schemas.IMAGE and self.shape is not None:
            return schemas.image_schema(self.shape, self.dtype, self.unit)
        raise ValueError(f"stream {self.name!r}: a {self.kind} stream needs its shape")


def _value_type(template: str) -> type | None:
    """int or float if the template formats its value (``{}``/``{:d}``/``{:.3f}``) as one, else None."""
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None or field == "ch":
            continue
        kind = (spec or "")[-1:]
        if kind in ("d", "x", "X", "o", "b", "c"):
            return int
        if kind in ("f", "F", "e", "E", "g", "G", "%"):
            return float
    return None


class Control:
    """A device setting declared with its command strings (read with ``get``, write with ``set``).

    * ``set`` is a format string filled with the validated value (``"W{:04.0f}"``),
      or a dict from validated value to command (``{True: "{ch}MO", False: "{ch}MF"}``).
      Integer formats (``{:d}``, ``{:02X}``) get a whole number, float formats a float,
      whatever the validator returned: a validator cannot break a format.
      In a channel's control, ``{ch}`` is the channel's id (``"{ch}VA{:.6f}"``).
    * ``parse`` turns the reply text into a value; any other failure than the
      instrument errors it raises on purpose becomes a ProtocolError naming the reply.
    * ``values`` maps what users write to what the device speaks
      (``{"closed": 0, "open": 1}``): sets accept either, gets return the user's form.
    * ``check`` names a driver method run after every write with a description of it
      (the ESP300's error buffer: ``check="check_errors"``).
    * ``verify``: read the value back after every write and require it to match
      (within ``tolerance``); a device that ignores commands (a laser in LOCAL mode)
      is caught. The driver's ``verify_timeout`` gives it time to take effect.
    * ``encode`` turns the validated value into the command's field when the device
      speaks another unit than the user (degrees → hex pulses); ``parse`` reads it back.
    * ``settable``: False for a control the configuration may not set (the address it is reached by).
    """

    def __init__(
        self,
        get: str | None,
        set: str | dict[Any, str] | None = None,
        *,
        parse: Callable[[str], Any] = float,
        validator: Validator | None = None,
        values: dict[Any, Any] | None = None,
        unit: str | None = None,
        doc: str = "",
        check: str | None = None,
        verify: bool = False,
        tolerance: float = 1e-9,
        settable: bool = True,
        encode: Callable[[Any], Any] | None = None,
    ) -> None:
        self.get_command = get
        self.set_command = set
        self.parse = parse
        self.validator = validator
        self.values = dict(values) if values is not None else None
        self.unit = unit
        self.__doc__ = doc
        self.doc = doc
        self.check = check
        self.verify = verify
        self.tolerance = tolerance
        self.settable = settable and set is not None
        self.encode = encode
        self.name = ""
        self._value_type = _value_type(set) if isinstance(set, str) else None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return self._present(self.read_raw(obj))

    @property
    def readable(self) -> bool:
        """The device can be asked for the value (there is a ``get``)."""
        return self.get_command is not None

    @property
    def writable(self) -> bool:
        """The value can be changed (there is a ``set``)."""
        return self.set_command is not None

    def __set__(self, obj: Any, value: Any) -> None:
        if not self.writable:
            raise CommandError(f"{obj.name}.{self.name} is read-only")
        what = f"{obj.name}.{self.name}"
        raw = self.to_device(value, what)
        sent = self.command_for(obj, raw, what)
        obj.write(sent)
        if self.check is not None:
            getattr(obj, self.check)(f"set {self.name} to {value!r}")
        if self.verify:
            verify_timeout = float(getattr(obj, "verify_timeout", 0.0))
            deadline = time.monotonic() + verify_timeout
            while not self.matches(self.read_raw(obj), raw):
                if time.monotonic() >= deadline:
                    raise DeviceErrorReply(
                        f"{what}: {sent!r} was not executed (it reads back {self.__get__(obj)!r}"
                        + (f" after {verify_timeout:g} s" if verify_timeout else "")
                        + "); is the device in front-panel LOCAL mode?"
                    )
                time.sleep(float(getattr(obj, "verify_interval", 0.1)))

    # --- the parts -----------------------------------------------------------------------
    def read_raw(self, obj: Any) -> Any:
        """The device's value as parsed (before ``values`` maps it back)."""
        if self.get_command is None:
            raise CommandError(f"{obj.name}.{self.name} is write-only")
        command = self.get_command.format(ch=getattr(obj, "id", ""))
        reply = obj.query(command)
        try:
            return self.parse(reply)
        except InstrumentError:
            raise
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ProtocolError(
                f"{obj.name}.{self.name}: reply {reply!r} to {command!r} cannot be read: {exc}"
            ) from None

    def to_device(self, value: Any, what: str) -> Any:
        """Validate ``value`` and turn it into what the device speaks."""
        if self.values is not None:
            if value in self.values:
                value = self.values[value]
            elif value not in self.values.values():
                choices = ", ".join(repr(k) for k in self.values)
                raise CommandError(f"{what}: {value!r} is not one of {choices}")
        if self.validator is not None:
            value = self.validator(value, what)
        if self._value_type is int:
            if isinstance(value, float) and value != int(value):
                raise CommandError(f"{what}: {value!r} is not a whole number")
            value = int(value)
        elif self._value_type is float:
            value = float(value)
        return value

    def command_for(self, obj: Any, raw: Any, what: str) -> str:
        channel = getattr(obj, "id", "")
        if self.encode is not None:
            raw = self.encode(raw)
        if isinstance(self.set_command, dict):
            if raw not in self.set_command:
                raise CommandError(f"{what}: {raw!r} is not one of {', '.join(map(repr, self.set_command))}")
            return self.set_command[raw].format(ch=channel)
        assert self.set_command is not None
        try:
            return self.set_command.format(raw, ch=channel)
        except (ValueError, TypeError) as exc:
            raise CommandError(f"{what}: cannot send {raw!r}: {exc}") from None

    def matches(self, got: Any, wanted: Any) -> bool:
        if isinstance(got, (int, float)) and isinstance(wanted, (int, float)):
            return math.isclose(float(got), float(wanted), rel_tol=1e-9, abs_tol=self.tolerance)
        return got == wanted

    def _present(self, raw: Any) -> Any:
        if self.values is not None:
            for key, device in self.values.items():
                if self.matches(raw, device) if not isinstance(device, str) else raw == device:
                    return key
        return raw

    def describe(self) -> dict[str, Any]:
        """Name, unit, limits or choices, read-only: what a GUI needs to draw the control."""
        out: dict[str, Any] = {"name": self.name, "unit": self.unit, "doc": self.doc}
        out["read_only"] = not self.writable
        out["settable_from_config"] = self.settable
        out.update(describe_validator(self.validator))
        if self.values is not None:
            out["choices"] = list(self.values)
        return out


class Measurement(Control):
    """A read-only quantity, e.g. ``power = Measurement("D?", parse=parse_power, unit="W")``."""

    def __init__(self, get: str, *, parse: Callable[[str], Any] = float, unit: str | None = None, doc: str = ""):
        super().__init__(get, None, parse=parse, unit=unit, doc=doc)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "doc": self.doc, "read_only": True}


class Setting(Control):
    """A setting the driver holds itself, for a device without command strings (a simulated camera,
    a vendor SDK): validated, settable from the configuration, in ``settings()`` and ``describe()``
    like any Control. A configured value is taken when the driver is built (no device is needed),
    so what depends on it (a camera's frame rate) is known before the device opens.

    ``changed`` names a driver method called after every change (a camera restarts its frame clock)::

        exposure_s = Setting(0.01, validator=in_range(100e-6, 10.0), unit="s", changed="restart_clock")
    """

    readable = True
    writable = True

    def __init__(
        self,
        default: Any,
        *,
        validator: Validator | None = None,
        values: dict[Any, Any] | None = None,
        unit: str | None = None,
        doc: str = "",
        changed: str | None = None,
    ) -> None:
        super().__init__(None, None, parse=_unchanged, validator=validator, values=values, unit=unit, doc=doc)
        self.default = default
        self.changed = changed
        self.settable = True

    def read_raw(self, obj: Any) -> Any:
        return obj.__dict__.get("_held_settings", {}).get(self.name, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        raw = self.to_device(value, f"{obj.name}.{self.name}")
        obj.__dict__.setdefault("_held_settings", {})[self.name] = raw
        if self.changed is not None:
            getattr(obj, self.changed)()


def _unchanged(value: Any) -> Any:
    return value


class Channel:
    """A repeated part of a device (an axis, a bus address) with controls of its own.

    Its controls' commands hold ``{ch}``, filled with the channel's id, and its
    exchanges go through the parent driver (same port, same lock)::

        class Axis(Channel):
            velocity = Control("{ch}VA?", "{ch}VA{:.6f}", validator=in_range(0, 1000), unit="mm/s")

        class ESP300(Driver):
            axis = Channels(Axis, ids="axes", prefix="axis")   # stage.axis[2].velocity = 1.5
    """

    def __init__(self, parent: Driver, id: Any, prefix: str) -> None:
        self.parent = parent
        self.id = id
        self.key = f"{prefix}{id}"
        self.name = f"{parent.name}.{self.key}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def query(self, command: str) -> str:
        return self.parent.query(command)

    def write(self, command: str) -> None:
        self.parent.write(command)

    def __getattr__(self, name: str) -> Any:
        # checks after writes (``check="check_errors"``) and verify timing live on the driver
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.parent, name)

    @classmethod
    def controls(cls) -> dict[str, Control]:
        return _declared(cls, Control)


class Channels:
    """Declares one channel per id: ``ids`` names the driver attribute that lists them."""

    def __init__(self, channel: type[Channel], *, ids: str, prefix: str) -> None:
        self.channel = channel
        self.ids = ids
        self.prefix = prefix
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, driver: Driver | None, owner: type | None = None) -> Any:
        if driver is None:
            return self
        cache = driver.__dict__.setdefault("_channels", {})
        if self.name not in cache:
            cache[self.name] = {i: self.channel(driver, i, self.prefix) for i in getattr(driver, self.ids)}
        return cache[self.name]

    def key_id(self, key: str) -> str | None:
        """The channel id in a settings key such as ``axis2``, or None."""
        return key[len(self.prefix) :] if key.startswith(self.prefix) and len(key) > len(self.prefix) else None


def _declared(cls: type, kind: type) -> dict[str, Any]:
    """Declarations of ``kind`` on ``cls`` and its bases, in declaration order (bases first)."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        found.update({k: v for k, v in vars(klass).items() if isinstance(v, kind)})
    return found


def command(
    method: Callable[..., Any] | None = None, *, changes: bool = True, validate: dict[str, str] | None = None
) -> Any:
    """Mark a driver method as a command the hub may send (``hub.command(id, name, **args)``).

    ``changes=False`` for commands that only read or move: after the others the
    instrument's settings are read again, so the recorded snapshot stays true.

    ``validate={argument: name}`` checks an argument before the command queues, not after the
    poll in progress: ``name`` is a declared setting whose new value the argument is
    (``{"nm": "wavelength"}``: that setting's validator), or a driver method giving this
    instance's validator (``{"target": "travel"}``: the configured limits; None while they are
    not known). The method takes the command's arguments it names (``axis``), and must not talk to
    the device: it runs on the caller's thread while the instrument may be busy.
    """

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__arrowdaq_command__ = True  # type: ignore[attr-defined]  # a marker on the function object
        fn.__arrowdaq_changes__ = changes  # type: ignore[attr-defined]  # a marker on the function object
        fn.__arrowdaq_validate__ = dict(validate or {})  # type: ignore[attr-defined]  # a marker on the function object
        return fn

    return mark(method) if method is not None else mark


#: Settings a config may give to override a driver's port defaults.
PORT_SETTING_NAMES = tuple(f.name for f in dataclasses.fields(PortSettings))


class Driver:
    """Base class of instrument drivers: subclasses declare what the instrument offers (see :mod:`arrowdaq.instruments.driver`)."""

    driver_name: ClassVar[str] = ""
    port_settings: ClassVar[PortSettings] = PortSettings()
    streams: ClassVar[tuple[Stream, ...]] = ()
    #: False for devices reached through a vendor SDK or simulated in-process (no ``port`` in the config).
    needs_port: ClassVar[bool] = True
    #: Seconds ``close()`` may take to leave the device safe (the actor waits this long on stop).
    close_timeout: ClassVar[float] = 5.0
    #: The simulator that speaks this driver's protocol, as ``"package.module:Class"`` (a
    #: :class:`arrowdaq.sim.SimDevice`): ``port = "sim"`` serves it. Plugins may instead register it
    #: under the entry point group ``arrowdaq.simulators`` with the driver's name.
    simulator: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A ``@command(validate=...)`` naming an argument the command lacks, or neither a declared setting
        nor a method, is a TypeError when the driver is defined (not a check that silently never runs)."""
        super().__init_subclass__(**kwargs)
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            for arg, check in getattr(fn, "__arrowdaq_validate__", {}).items():
                if arg not in inspect.signature(fn).parameters:
                    raise TypeError(f"{cls.__name__}.{name}: validate names {arg!r}, not an argument of {name}")
                if cls.declared_control(check) is None and not callable(getattr(cls, check, None)):
                    raise TypeError(f"{cls.__name__}.{name}: validate names {check!r}: no such setting or method")

    def __init__(self, transport: Transport | None, *, name: str = "") -> None:
        self.transport = transport
        self.name = name or self.driver_name
        #: Declared settings from the configuration, applied by :meth:`connect_configured` after :meth:`connect`.
        self.declared_settings: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # --- declarations ------------------------------------------------------------
    @classmethod
    def streams_for(cls, settings: dict[str, Any]) -> tuple[Stream, ...]:
        """The streams an instrument with these settings produces, known before the device is opened
        (storage and processors need them): the one place the runtime asks. The default is
        ``streams``; a driver whose streams depend on its settings (an ESP300's axes, a SCPI
        instrument's queries, a camera's frame shape) overrides this, and its ``read``."""
        return cls.streams

    @classmethod
    def controls(cls) -> dict[str, Control]:
        """The declared controls and measurements, in declaration order."""
        return _declared(cls, Control)

    @classmethod
    def channel_groups(cls) -> dict[str, Channels]:
        return _declared(cls, Channels)

    @classmethod
    def declared_control(cls, name: str) -> Control | None:
        """The control a setting name (``wavelength``, ``axis2.velocity``) declares, from the class alone;
        None when only the instance can tell (an unknown name: the instance lists its settings)."""
        head, _, tail = name.partition(".")
        if not tail:
            return cls.controls().get(head)
        for group in cls.channel_groups().values():
            if group.key_id(head) is not None:
                return group.channel.controls().get(tail)
        return None

    @classmethod
    def constructor_settings(cls) -> list[str]:
        """The keyword settings the constructor accepts."""
        params = inspect.signature(cls.__init__).parameters
        return [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY and p != "name"]

    @classmethod
    def setting_names(cls) -> list[str]:
        """Every key the config's ``[instruments.settings]`` may hold: the constructor's keywords, each
        settable declared control, each channel group (``axis1``...) and, with a port, the PortSettings
        fields (``timeout``, ``delay``, ``min_interval``, ``rtscts``...)."""
        names = cls.constructor_settings()
        names += [n for n, c in cls.controls().items() if c.settable and n not in names]
        names += [f"{g.prefix}<id>" for g in cls.channel_groups().values()]
        return names + [p for p in PORT_SETTING_NAMES if p not in names] if cls.needs_port else names

    @classmethod
    def is_channel_key(cls, key: str) -> bool:
        """True for a settings key naming a channel (``axis2``): a table of that channel's settings."""
        return any(g.key_id(key) is not None for g in cls.channel_groups().values())

    @classmethod
    def split_settings(cls, settings: dict[str, Any], name: str = "") -> tuple[dict, dict, dict]:
        """The config's settings as (port overrides, declared settings, constructor keywords).

        An unknown key is an InstrumentConfigError naming it and the known ones.
        """
        who = name or cls.driver_name
        port = {k: v for k, v in settings.items() if k in PORT_SETTING_NAMES and cls.needs_port}
        controls = cls.controls()
        self_is_channel = cls.is_channel_key
        constructor = cls.constructor_settings()
        declared: dict[str, Any] = {}
        kwargs: dict[str, Any] = {}
        for key, value in settings.items():
            if key in port:
                continue
            if key in constructor:
                kwargs[key] = value
            elif key in controls and controls[key].settable:
                declared[key] = value
            elif self_is_channel(key) and isinstance(value, dict):
                declared[key] = dict(value)
            else:
                raise InstrumentConfigError(
                    f"{who}: unknown setting {key!r} for driver {cls.driver_name!r} "
                    f"(settings: {', '.join(cls.setting_names())})"
                )
        return port, declared, kwargs

    @classmethod
    def build(cls, transport: Transport | None, *, name: str = "", **settings: Any) -> Driver:
        """The driver with the config's settings (not yet connected): declared settings are checked
        against their validators now, so a bad value fails before anything starts."""
        _, declared, kwargs = cls.split_settings(settings, name)
        driver = cls(transport, name=name, **kwargs)
        driver.declared_settings = driver.check_declared(declared)
        controls = cls.controls()
        for key, value in driver.declared_settings.items():  # held by the driver: taken now
            if isinstance(controls.get(key), Setting):
                controls[key].__set__(driver, value)
        return driver

    @classmethod
    def open(cls, port: str, *, name: str = "", **settings: Any) -> Driver:
        """Open ``port`` with this driver's port settings and build the driver (not yet connected).

        ``settings`` are the config's settings: PortSettings fields override the
        driver's port defaults (``timeout=0.2`` for a fast simulator, ``rtscts=False``
        for a cable without handshake lines); declared controls are applied by
        :meth:`connect_configured`; the rest go to the constructor.
        """
        port_overrides, _, _ = cls.split_settings(settings, name)
        try:
            port_settings = dataclasses.replace(cls.port_settings, **port_overrides)
        except TypeError as exc:
            raise InstrumentConfigError(f"{name or cls.driver_name}: bad port setting: {exc}") from None
        transport = open_transport(port, port_settings)
        try:
            rest = {k: v for k, v in settings.items() if k not in port_overrides}
            return cls.build(transport, name=name, **rest)
        except BaseException:
            transport.close()
            raise

    def check_declared(self, declared: dict[str, Any]) -> dict[str, Any]:
        """Validate configured values of declared settings; InstrumentConfigError names setting and value."""
        groups = {g.prefix: g for g in self.channel_groups().values()}
        checked: dict[str, Any] = {}
        for key, value in declared.items():
            if isinstance(value, dict):
                group = next(g for g in groups.values() if g.key_id(key) is not None)
                channels = {str(i): ch for i, ch in getattr(self, group.name).items()}
                channel = channels.get(str(group.key_id(key)))
                if channel is None:
                    raise InstrumentConfigError(
                        f"{self.name}: setting {key}: no such {group.prefix} (configured: "
                        f"{', '.join(c.key for c in channels.values())})"
                    )
                sub = channel.controls()
                for item, v in value.items():
                    control = sub.get(item)
                    if control is None or not control.settable:
                        settable = ", ".join(n for n, c in sub.items() if c.settable)
                        raise InstrumentConfigError(
                            f"{self.name}: setting {key}.{item}: unknown (settings of {key}: {settable})"
                        )
                    self._validate(control, v, f"{key}.{item}")
                checked[channel.key] = dict(value)
            else:
                self._validate(self.controls()[key], value, key)
                checked[key] = value
        return checked

    def _validate(self, control: Control, value: Any, key: str) -> None:
        try:
            control.to_device(value, f"{self.name}.{key}")
        except CommandError as exc:
            raise InstrumentConfigError(f"{self.name}: setting {key}: {_reason(exc)}") from None

    def commands(self) -> dict[str, Callable[..., Any]]:
        """Name → bound method of every ``@command``."""
        return {
            name: getattr(self, name)
            for name, attr in inspect.getmembers(type(self))
            if getattr(attr, "__arrowdaq_command__", False)
        }

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What the driver offers, from its declarations (no device needed): controls with unit,
        limits or choices and read-only flag, channel controls, commands with their parameters,
        streams. The live service and the GUI build their panels from it."""
        commands = []
        for name, attr in inspect.getmembers(cls):
            if not getattr(attr, "__arrowdaq_command__", False):
                continue
            params = [
                {"name": p.name, "default": None if p.default is inspect.Parameter.empty else p.default}
                for p in list(inspect.signature(attr).parameters.values())[1:]
            ]
            doc = (inspect.getdoc(attr) or "").split("\n")[0]
            changes = getattr(attr, "__arrowdaq_changes__", True)
            commands.append({"name": name, "doc": doc, "params": params, "changes_settings": changes})
        return {
            "driver": cls.driver_name,
            "controls": [c.describe() for c in cls.controls().values()],
            "channels": {
                g.prefix: [c.describe() for c in g.channel.controls().values()] for g in cls.channel_groups().values()
            },
            "commands": commands,
            "streams": [{"name": s.name, "kind": s.kind, "unit": s.unit, "poll_hz": s.poll_hz} for s in cls.streams],
        }

    # --- settings by name (the hub's ``get``/``set``) --------------------------------------
    def setting_keys(self) -> list[str]:
        """Every declared control by name, channel controls as ``axis1.velocity``."""
        keys = list(self.controls())
        for group in self.channel_groups().values():
            for channel in getattr(self, group.name).values():
                keys += [f"{channel.key}.{n}" for n in channel.controls()]
        return keys

    def _resolve(self, name: str) -> tuple[Any, Control]:
        head, _, tail = name.partition(".")
        if not tail and head in self.controls():
            return self, self.controls()[head]
        for group in self.channel_groups().values():
            for channel in getattr(self, group.name).values():
                if channel.key == head and tail in channel.controls():
                    return channel, channel.controls()[tail]
        raise CommandError(f"{self.name}: no setting {name!r} (settings: {', '.join(self.setting_keys())})")

    def describe_controls(self) -> list[dict[str, Any]]:
        """Every control of this instance, channels expanded (``axis2.velocity``): a control panel's rows."""
        rows = [c.describe() for c in self.controls().values()]
        for group in self.channel_groups().values():
            for channel in getattr(self, group.name).values():
                rows += [{**c.describe(), "name": f"{channel.key}.{c.name}"} for c in channel.controls().values()]
        return rows

    def get_setting(self, name: str) -> Any:
        """The value of a declared control: ``wavelength``, ``axis2.velocity``."""
        target, control = self._resolve(name)
        return control.__get__(target)

    def set_setting(self, name: str, value: Any) -> None:
        """Set a declared control (validated, checked, verified as it declares)."""
        target, control = self._resolve(name)
        control.__set__(target, value)

    # --- lifecycle (blocking; run in the actor's worker thread) ----------------------
    def connect(self) -> None:
        """Check that the device answers and bring it to a known state."""

    def connect_configured(self) -> None:
        """Connect, then apply the configured declared settings (what the instrument actor calls)."""
        self.connect()
        self.apply_configured()

    def apply_configured(self) -> None:
        """Set each configured declared setting in declaration order, read it back and check it.

        A refused value or a read-back that differs is an InstrumentConfigError naming
        the instrument, the setting and the value: a restart would not fix it.
        """
        for name, control in self.controls().items():
            if name in self.declared_settings:
                self._apply(self, control, name, self.declared_settings[name])
        for group in self.channel_groups().values():
            for channel in getattr(self, group.name).values():
                wanted = self.declared_settings.get(channel.key, {})
                for name, control in channel.controls().items():
                    if name in wanted:
                        self._apply(channel, control, f"{channel.key}.{name}", wanted[name])

    def _apply(self, target: Any, control: Control, key: str, value: Any) -> None:
        try:
            control.__set__(target, value)
            if not control.readable:
                return
            raw = control.to_device(value, f"{self.name}.{key}")
            got = control.read_raw(target)
        except (CommandError, DeviceErrorReply) as exc:
            raise InstrumentConfigError(f"{self.name}: setting {key} = {value!r} refused: {_reason(exc)}") from None
        if not control.matches(got, raw):
            raise InstrumentConfigError(
                f"{self.name}: setting {key} = {value!r} did not take: the device reads back {control._present(got)!r}"
            )

    def close(self) -> None:
        """Leave the device safe, then release the port."""
        if self.transport is not None:
            self.transport.close()

    def identity(self) -> dict[str, str]:
        """Model, serial number, firmware... as the device reports them."""
        return {"driver": self.driver_name}

    def settings(self) -> dict[str, Any]:
        """The current settings worth recording with the data: every declared control that can be
        read, channels nested by their key (``{"axis1": {"velocity": 2.0}}``). Drivers add to it."""
        out: dict[str, Any] = {}
        for name, control in self.controls().items():
            if control.writable and control.readable:
                out[name] = getattr(self, name)
        for group in self.channel_groups().values():
            for channel in getattr(self, group.name).values():
                out[channel.key] = {
                    name: getattr(channel, name)
                    for name, control in channel.controls().items()
                    if control.writable and control.readable
                }
        return out

    def read(self, stream: str) -> Any:
        """One reading of ``stream``: a float (scalar) or a RecordBatch (vector, image).

        A stream reads the attribute it names; a control with ``values`` publishes the
        device's number (a shutter is 0 or 1 in the data, "closed"/"open" in the settings).
        """
        for s in type(self).streams:
            if s.name == stream:
                attribute = s.read or stream
                control = type(self).controls().get(attribute)
                if control is not None and control.values is not None:
                    return control.read_raw(self)
                return getattr(self, attribute)
        names = ", ".join(s.name for s in type(self).streams)
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


def _reason(exc: BaseException) -> str:
    """An error's message without the ``name.setting:`` prefix the caller states itself."""
    text = str(exc)
    head, sep, rest = text.partition(": ")
    return rest if sep and " " not in head else text
