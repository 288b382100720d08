"""Generic SCPI instrument (scopes, DMMs, sources) declared in the configuration, not in code.

The IEEE 488.2 common queries are declared here (``identification``,
``event_status``, ``status_byte``, ``next_error``: read them with ``get``).
Everything instrument-specific is declared in the settings, and becomes the same
declarations a coded driver has:

* ``controls``: settings with their commands, limits or choices and unit, e.g. ::

      [instruments.settings.controls.sample_rate]
      get = "ACQ:SRAT?"
      set = "ACQ:SRAT {:g}"
      limits = [1, 1e10]          # or choices = ["ASC", "WORD", "REAL"] (as the instrument answers)
      unit = "Sa/s"
      value = 200000              # optional: applied at connect, read back and checked

  Each is a :class:`~arrowdaq.instruments.driver.Control`: validated before anything is sent,
  settable with ``set``, in the run file's settings snapshot and in ``describe`` for the GUI.
* ``queries``: scalar streams (a :class:`~arrowdaq.instruments.driver.Measurement` each);
* ``traces``: vector streams (waveforms), read by a hand-written sequence (select,
  axis, data), e.g. in TOML::

    [instruments.settings.queries.voltage]
    query = "MEAS:VOLT:DC?"
    unit = "V"

    [instruments.settings.traces.trace]
    query = "WAV:DATA?"
    format = "binary"            # or "ascii" (comma-separated numbers)
    dtype = "<f4"                # binary sample type: "<f4", "<i2", ">i2", "u1", ...
    select = ["WAV:SOUR CHAN1"]  # sent before each readout (choose the channel)
    x_increment = "WAV:XINC?"    # axis terms: a query, or a number
    x_origin = "WAV:XOR?"
    unit = "V"
    x_unit = "s"

The axis is asked of the instrument at every readout, because its time base may
have changed since the last one (from its front panel or a raw command). Sample
``i`` of a trace is at ``x_origin + (i - x_reference) * x_increment``; a raw
value ``r`` is ``(r - y_reference) * y_increment + y_origin`` (integer formats).
Each term is a query (ends with ``?``), a number, or a field of a ``preamble``
query (``preamble = "WAV:PRE?"``, fields named by ``preamble_fields``; the
default is the ten-field Keysight layout), so one round trip gives them all.

After every command, a control's set included, the error queue is read
(``SYST:ERR?``): a non-zero code raises :class:`DeviceErrorReply` naming the command. A query that gets no reply
is also checked against the queue, so ``-113,"Undefined header"`` tells a typo
from a dead link.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, cast

import numpy as np
import pyarrow as pa
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictFloat,
    StringConstraints,
    field_validator,
    model_validator,
)

from ...data import schemas, vector_batch
from ...errors import CommandError, ConfigError, DeviceErrorReply, DeviceTimeout, ProtocolError
from ...validation import validate
from ..driver import Control, Driver, Measurement, Stream, command
from ..transports.base import PortSettings, Transport
from ..validators import Validator, in_range, one_of

#: The preamble of Keysight InfiniiVision/Infiniium scopes (``:WAVeform:PREamble?``).
KEYSIGHT_PREAMBLE = (
    "format",
    "type",
    "points",
    "count",
    "x_increment",
    "x_origin",
    "x_reference",
    "y_increment",
    "y_origin",
    "y_reference",
)
AXIS_TERMS = ("x_increment", "x_origin", "x_reference", "y_increment", "y_origin", "y_reference")
AXIS_DEFAULTS = {
    "x_increment": 1.0,
    "x_origin": 0.0,
    "x_reference": 0.0,
    "y_increment": 1.0,
    "y_origin": 0.0,
    "y_reference": 0.0,
}
#: Most errors drained from the queue after one command (a queue that never empties is garbage).
MAX_QUEUED_ERRORS = 32
ERROR_REPLY = re.compile(r'^\s*([+-]?\d+)\s*(?:,\s*"?(.*?)"?)?\s*$')


def parse_error(reply: str, source: str = "SYST:ERR?") -> tuple[int, str]:
    """``-113,"Undefined header"`` → ``(-113, "Undefined header")``; ``+0,"No error"`` → ``(0, ...)``."""
    match = ERROR_REPLY.match(reply)
    if match is None:
        raise ProtocolError(f"{source}: expected '<code>,\"<message>\"', got {reply!r}")
    return int(match.group(1)), match.group(2) or ""


def parse_number(reply: str, source: str) -> float:
    """A SCPI numeric reply (``+1.000000E-05``, ``2000``)."""
    try:
        return float(reply.strip())
    except ValueError:
        raise ProtocolError(f"{source}: expected a number, got {reply[:60]!r}") from None


def parse_ascii_values(reply: str, source: str) -> np.ndarray:
    """Comma-separated numbers → float64 array (converted in C, not a Python loop per value)."""
    text = reply.strip()
    if not text:
        raise ProtocolError(f"{source}: empty trace")
    try:
        return np.array(text.split(","), dtype=np.float64)
    except ValueError:
        raise ProtocolError(f"{source}: not a comma-separated list of numbers: {text[:60]!r}") from None


def parse_register(reply: str) -> int:
    """A status register (``*ESR?``, ``*STB?``): a whole number 0-255 (``+32`` is 32)."""
    value = int(reply.strip())
    if not 0 <= value <= 255:
        raise ValueError(f"{value} is not a register value 0-255")
    return value


def parse_identity(reply: str) -> dict[str, str]:
    """``*IDN?`` → manufacturer, model, serial, firmware (missing fields stay empty)."""
    parts = [p.strip() for p in reply.split(",")]
    parts += [""] * (4 - len(parts))
    return {"manufacturer": parts[0], "model": parts[1], "serial": parts[2], "firmware": ",".join(parts[3:])}


# --- settings: pydantic models, checked through arrowdaq.validation (errors name the key) --------
#: A SCPI command or query as configured: a non-empty string, surrounding spaces dropped.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
#: Polls per second (0: only on request).
Rate = Annotated[float, Field(ge=0)]


def _listed(value: Any) -> Any:
    """One command may be given as a string instead of a list of one."""
    return [value] if isinstance(value, str) else value


#: Commands sent in order (``setup``, a trace's ``select``).
Commands = Annotated[tuple[Text, ...], BeforeValidator(_listed)]


def _numeric_dtype(dtype: str) -> str:
    try:
        numeric = np.dtype(dtype).kind in ("i", "u", "f")
    except TypeError:
        numeric = False
    if not numeric:
        raise ValueError(f"expected a numeric NumPy dtype such as '<f4' or '<i2', got {dtype!r}")
    return dtype


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Stream(_Settings):
    """A configured stream; its name is its key in the settings table."""

    _name: str = PrivateAttr("")

    @property
    def name(self) -> str:
        return self._name


class ScalarQuery(_Stream):
    """A query whose numeric reply is one reading of a scalar stream."""

    query: Text
    unit: str | None = None
    poll_hz: Rate = 1.0

    def stream(self) -> Stream:
        return Stream(self.name, unit=self.unit, poll_hz=self.poll_hz)

    def measurement(self) -> Measurement:
        """The query as a declaration: a reply that is not a number is a ProtocolError naming it."""
        measurement = Measurement(self.query, unit=self.unit, doc=f"stream {self.name}")
        measurement.name = self.name
        return measurement


#: An axis term of a trace: a number, or a query asked at each readout.
AxisTerm = StrictFloat | Text | None


class TraceQuery(_Stream):
    """A waveform readout: the data query, its encoding and where its axis comes from."""

    query: Text
    format: Literal["ascii", "binary"] = "ascii"
    dtype: Annotated[str, AfterValidator(_numeric_dtype)] = "<f4"
    unit: str | None = None
    x_unit: str | None = "s"
    select: Commands = ()
    preamble: Text | None = None
    preamble_fields: tuple[str, ...] = KEYSIGHT_PREAMBLE
    poll_hz: Rate = 1.0
    x_increment: AxisTerm = None
    x_origin: AxisTerm = None
    x_reference: AxisTerm = None
    y_increment: AxisTerm = None
    y_origin: AxisTerm = None
    y_reference: AxisTerm = None

    @model_validator(mode="after")
    def _has_an_x_axis(self) -> TraceQuery:
        if self.x_increment is None and not (self.preamble and "x_increment" in self.preamble_fields):
            raise ValueError(
                "the x axis needs 'x_increment' (a query such as \"WAV:XINC?\" or a number) "
                "or a 'preamble' query that gives it"
            )
        return self

    @property
    def axis(self) -> dict[str, str | float]:
        """The axis terms configured: a query (str) or a number."""
        terms = ((term, getattr(self, term)) for term in AXIS_TERMS)
        return {term: v for term, v in terms if v is not None}

    def stream(self) -> Stream:
        return Stream(self.name, kind=schemas.VECTOR, unit=self.unit, x_unit=self.x_unit, poll_hz=self.poll_hz)


#: Names a configured control may not take: the driver's own attributes.
RESERVED = frozenset({"configured", "measurements", "setup", "reset_on_connect", "reset_wait_s", "check_errors"})


def _pair(value: Any) -> Any:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("expected [low, high]")
    return value


class ConfiguredControl(_Settings):
    """A control declared in the settings: its commands, limits or choices, and the value to apply at connect."""

    get: Text
    set: Text | None = None
    limits: Annotated[tuple[StrictFloat, StrictFloat], BeforeValidator(_pair)] | None = None
    choices: Annotated[list[Any], Field(min_length=1)] | None = None
    unit: str | None = None
    doc: str = ""
    value: Any = None

    @field_validator("set")
    @classmethod
    def _takes_a_value(cls, set_: str | None) -> str | None:
        if set_ is not None and "{" not in set_:
            raise ValueError(f"{set_!r} has no {{}} field for the value")
        return set_

    @model_validator(mode="after")
    def _consistent(self) -> ConfiguredControl:
        if self.limits is not None and self.choices is not None:
            raise ValueError("give 'limits' or 'choices', not both")
        if self.has_value and self.set is None:
            raise ValueError("a control without a 'set' command cannot be given a 'value'")
        return self

    @property
    def has_value(self) -> bool:
        return "value" in self.model_fields_set

    def declaration(self) -> Control:
        """The control as a coded driver declares it (a read-only Measurement without ``set``)."""
        validator: Validator | None = None
        parse: Any = float
        if self.limits is not None:
            validator = in_range(float(self.limits[0]), float(self.limits[1]))
        elif self.choices is not None:
            validator = one_of(self.choices)
            if all(isinstance(c, str) for c in self.choices):
                parse = str.strip
        if self.set is None:
            return Measurement(self.get, parse=parse, unit=self.unit, doc=self.doc)
        return Control(self.get, self.set, parse=parse, validator=validator, unit=self.unit, doc=self.doc)


class ScpiSettings(_Settings):
    """The configured streams (``queries``: scalar, ``traces``: vector), ``controls`` and ``setup``."""

    queries: dict[str, ScalarQuery] = {}
    traces: dict[str, TraceQuery] = {}
    controls: dict[str, ConfiguredControl] = {}
    setup: Commands = ()

    @model_validator(mode="after")
    def _named(self) -> ScpiSettings:
        for name in self.traces:
            if name in self.queries:
                raise ValueError(f"traces.{name}: a stream {name!r} is already defined under 'queries'")
        for name in self.controls:
            if not name.isidentifier() or hasattr(SCPIInstrument, name) or name in RESERVED:
                raise ValueError(
                    f"controls.{name}: not a usable name (a Python identifier that is not already "
                    f"a member of the scpi driver, such as {', '.join(sorted(SCPIInstrument.controls()))})"
                )
        for name, spec in {**self.queries, **self.traces}.items():
            spec._name = name
        return self

    @property
    def streams(self) -> dict[str, ScalarQuery | TraceQuery]:
        return {**self.queries, **self.traces}


def parse_settings(**given: Any) -> ScpiSettings:
    """The SCPI driver's settings tables, checked; ConfigError naming each key that is wrong."""
    return validate(ScpiSettings, {k: v for k, v in given.items() if v is not None}, "scpi settings")


# --- the driver ------------------------------------------------------------------------
class SCPIInstrument(Driver):
    """A SCPI instrument whose settings and streams are declared in its configuration (module docstring)."""

    driver_name = "scpi"
    simulator = "arrowdaq.sim.scope:ScopeSim"
    port_settings = PortSettings(write_termination="\n", read_termination="\n", timeout=2.0)

    # IEEE 488.2 / SCPI: what every instrument answers
    identification = Measurement("*IDN?", parse=str, doc="Manufacturer, model, serial, firmware")
    event_status = Measurement(
        "*ESR?", parse=parse_register, doc="Reading clears it: bit 5 command, 4 execution, 3 device, 2 query error"
    )
    status_byte = Measurement(
        "*STB?", parse=parse_register, doc="Bit 2 error queue not empty, 4 message available, 5 event summary"
    )
    next_error = Measurement("SYST:ERR?", parse=str, doc="The oldest queued error (reading removes it)")

    def __init__(
        self,
        transport: Transport | None,
        *,
        name: str = "",
        queries: Mapping[str, Any] | None = None,
        traces: Mapping[str, Any] | None = None,
        controls: Mapping[str, Any] | None = None,
        setup: Sequence[str] = (),
        reset_on_connect: bool = False,
        reset_wait_s: float = 1.0,
        check_errors: bool = True,
    ) -> None:
        super().__init__(transport, name=name)
        checked = parse_settings(queries=queries, traces=traces, controls=controls, setup=setup)
        self.configured = checked.streams
        self.measurements = {n: q.measurement() for n, q in checked.queries.items()}
        self.setup = checked.setup
        self.reset_on_connect = bool(reset_on_connect)
        self.reset_wait_s = float(reset_wait_s)
        self.check_errors = bool(check_errors)
        self._identity: dict[str, str] = {}

    @classmethod
    def build(cls, transport: Transport | None, *, name: str = "", **settings: Any) -> Driver:
        """The driver with its configured controls declared on it, as a coded driver declares them: a subclass
        per configuration, so the configured values are applied at connect, read back and checked, recorded in
        the settings snapshot and reached by ``get``/``set`` the same way."""
        declared = parse_settings(controls=settings.get("controls")).controls
        if not declared:
            return super().build(transport, name=name, **settings)
        namespace = {"__module__": cls.__module__, "__doc__": cls.__doc__} | {
            n: c.declaration() for n, c in declared.items()
        }
        klass = cast("type[SCPIInstrument]", type(cls.__name__, (cls,), namespace))
        values = {n: c.value for n, c in declared.items() if c.has_value}
        return super(SCPIInstrument, klass).build(transport, name=name, **settings, **values)

    @classmethod
    def streams_for(cls, settings: dict[str, Any]) -> tuple[Stream, ...]:
        configured = parse_settings(queries=settings.get("queries"), traces=settings.get("traces"))
        return tuple(spec.stream() for spec in configured.streams.values())

    # --- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        self._identity = parse_identity(self.identification)
        if self.reset_on_connect:
            self.reset()
        else:
            self.apply_setup()

    def apply_setup(self) -> None:
        """Send the configured set-up commands and each trace's ``select`` commands, checked."""
        for cmd in self.setup:
            self.write(cmd)
        for spec in self.configured.values():
            if isinstance(spec, TraceQuery):
                for cmd in spec.select:
                    self.write(cmd)

    def identity(self) -> dict[str, str]:
        return {"driver": self.driver_name, **self._identity}

    def settings(self) -> dict[str, Any]:
        """The configured controls' values (read now), with the streams' queries and the set-up."""
        return super().settings() | {
            "queries": {
                n: {"query": q.query, "unit": q.unit} for n, q in self.configured.items() if isinstance(q, ScalarQuery)
            },
            "traces": {
                n: {"query": q.query, "format": q.format, "dtype": q.dtype, "unit": q.unit, "x_unit": q.x_unit}
                for n, q in self.configured.items()
                if isinstance(q, TraceQuery)
            },
            "setup": list(self.setup),
        }

    def read(self, stream: str) -> float | pa.RecordBatch:
        spec = self.configured.get(stream)
        if spec is None:
            raise CommandError(f"{self.name} has no stream {stream!r} (streams: {', '.join(self.configured)})")
        if isinstance(spec, ScalarQuery):
            return self.measurements[stream].__get__(self)
        return self.read_trace(spec)

    # --- traces -------------------------------------------------------------------------
    def read_trace(self, spec: TraceQuery) -> pa.RecordBatch:
        """One waveform as a vector batch with the instrument's own axis."""
        t_ns = time.time_ns()
        for cmd in spec.select:
            self.send(cmd)
        terms = self._axis_terms(spec)
        source = f"{self.name}: {spec.query}"
        if spec.format == "ascii":
            values = parse_ascii_values(self.checked_query(spec.query), source)
        else:
            raw = self._binary_query(spec.query)
            itemsize = np.dtype(spec.dtype).itemsize
            if len(raw) % itemsize:
                raise ProtocolError(f"{source}: {len(raw)} bytes is not a whole number of {spec.dtype} samples")
            values = np.frombuffer(raw, dtype=spec.dtype).astype(np.float64)
        if terms["y_increment"] != 1.0 or terms["y_origin"] or terms["y_reference"]:
            values = (values - terms["y_reference"]) * terms["y_increment"] + terms["y_origin"]
        x0 = terms["x_origin"] - terms["x_reference"] * terms["x_increment"]
        return vector_batch(
            values,
            channel=spec.name,
            unit=spec.unit,
            x0=x0,
            dx=terms["x_increment"],
            x_unit=spec.x_unit,
            timestamps_ns=t_ns,
        )

    def _axis_terms(self, spec: TraceQuery) -> dict[str, float]:
        terms = dict(AXIS_DEFAULTS)
        if spec.preamble:
            reply = self.checked_query(spec.preamble)
            parts = reply.split(",")
            if len(parts) < len(spec.preamble_fields):
                raise ProtocolError(
                    f"{self.name}: {spec.preamble} gave {len(parts)} fields, expected {len(spec.preamble_fields)}: {reply[:80]!r}"
                )
            for key, text in zip(spec.preamble_fields, parts, strict=False):  # fields past the named ones are ignored
                if key in terms:
                    terms[key] = parse_number(text, f"{self.name}: {spec.preamble} field {key}")
        for key, source in spec.axis.items():
            terms[key] = (
                source
                if isinstance(source, float)
                else parse_number(self.checked_query(source), f"{self.name}: {source}")
            )
        if not terms["x_increment"] > 0:
            raise ProtocolError(f"{self.name}: x increment must be > 0, got {terms['x_increment']}")
        return terms

    def _binary_query(self, cmd: str) -> bytes:
        query_binary = getattr(self.transport, "query_binary", None)
        if query_binary is None:
            raise ConfigError(
                f"{self.name}: binary traces need a VISA resource as port (its transport reads IEEE 488.2 blocks)"
            )
        try:
            return query_binary(cmd)
        except DeviceTimeout:
            self._explain_silence(cmd)
            raise

    # --- checked exchanges ---------------------------------------------------------------------
    def send(self, cmd: str) -> None:
        """Write without checking the error queue (for hot paths and the queue itself)."""
        super().write(cmd)

    def checked_query(self, cmd: str) -> str:
        """Query; when no reply comes, look in the error queue for the reason."""
        try:
            return super().query(cmd)
        except DeviceTimeout:
            self._explain_silence(cmd)
            raise

    def _explain_silence(self, cmd: str) -> None:
        if not self.check_errors:
            return
        try:
            errors = self.read_errors()
        except (DeviceTimeout, ProtocolError):
            return  # the device is silent to everything: the timeout stands
        if errors:
            raise DeviceErrorReply(f"{self.name}: no reply to {cmd!r}; device errors: {_format(errors)}")

    def read_errors(self) -> list[tuple[int, str]]:
        """Drain the error queue (``SYST:ERR?`` until ``0``)."""
        found: list[tuple[int, str]] = []
        for _ in range(MAX_QUEUED_ERRORS):
            code, message = parse_error(super().query("SYST:ERR?"), f"{self.name}: SYST:ERR?")
            if code == 0:
                return found
            found.append((code, message))
        raise ProtocolError(f"{self.name}: SYST:ERR? did not report an empty queue after {MAX_QUEUED_ERRORS} errors")

    def _check(self, cmd: str) -> None:
        if self.check_errors:
            errors = self.read_errors()
            if errors:
                raise DeviceErrorReply(f"{self.name}: {cmd!r} → {_format(errors)}")

    # --- commands -----------------------------------------------------------------------
    @command
    def write(self, command: str) -> None:
        """Expert use: send a raw SCPI command, then check the error queue."""
        self.send(command)
        self._check(command)

    @command(changes=False)
    def query(self, command: str) -> str:
        """Expert use: send a raw SCPI query and return its reply text."""
        return self.checked_query(command)

    @command
    def reset(self) -> None:
        """``*RST``, wait for the instrument, ``*CLS``, then re-apply the configured set-up."""
        self.send("*RST")
        time.sleep(self.reset_wait_s)
        self.send("*CLS")
        self.apply_setup()

    @command
    def clear(self) -> None:
        """``*CLS``: clear the error queue and the event status register."""
        self.send("*CLS")

    @command(changes=False)
    def errors(self) -> list[list[Any]]:
        """Every queued device error as ``[code, message]`` (empties the queue)."""
        return [[code, message] for code, message in self.read_errors()]


def _format(errors: list[tuple[int, str]]) -> str:
    return "; ".join(f'{code:+d},"{message}"' for code, message in errors)
