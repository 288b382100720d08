"""The daemon's ``describe`` answer, read into small typed records the panels are built from.

Everything the GUI knows about instruments comes from here: nothing is
hard-coded per driver. Unknown keys are ignored, so a newer daemon still works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ControlInfo:
    """A setting: numeric with limits, one of choices, or on/off; read-only ones are shown, not edited."""

    name: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] | None = None
    read_only: bool = False
    kind: str = "number"  # number, choice, bool, text
    value: Any = None
    doc: str = ""

    def check(self, value: Any) -> Any:
        """The value to send, or ValueError with the reason (the same limits the daemon enforces)."""
        if self.read_only:
            raise ValueError(f"{self.name} is read-only")
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{self.name}: {value!r} is not one of {', '.join(map(str, self.choices))}")
            return value
        if self.kind == "bool":
            return bool(value)
        if self.kind == "number":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name}: {value!r} is not a number") from None
            if self.minimum is not None and number < self.minimum:
                raise ValueError(f"{self.name}: {number:g} is below {self.minimum:g} {self.unit}".rstrip())
            if self.maximum is not None and number > self.maximum:
                raise ValueError(f"{self.name}: {number:g} is above {self.maximum:g} {self.unit}".rstrip())
            return number
        return value


@dataclass
class CommandInfo:
    name: str
    params: list[str] = field(default_factory=list)
    doc: str = ""
    query: bool = False  # only reads: shown apart from the commands that change the instrument


@dataclass
class StreamInfo:
    name: str
    kind: str = "scalar"
    unit: str = ""
    producer: str = ""
    long_name: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # column -> unit ('' when it has none)


@dataclass
class InstrumentInfo:
    name: str
    driver: str = ""
    capabilities: list[str] = field(default_factory=list)
    status: str = ""
    error: str = ""
    controls: list[ControlInfo] = field(default_factory=list)
    commands: list[CommandInfo] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    axes: list[int] = field(default_factory=list)
    position_unit: str = ""
    describe_error: str = ""  # the instrument could not be asked yet (busy, starting): ask again later

    @property
    def movable(self) -> bool:
        return "Movable" in self.capabilities


@dataclass
class Description:
    instruments: list[InstrumentInfo] = field(default_factory=list)
    streams: dict[str, StreamInfo] = field(default_factory=dict)
    plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    plan_docs: dict[str, str] = field(default_factory=dict)  # a plan's one-line description

    def streams_of_kind(self, kind: str) -> list[str]:
        return sorted(n for n, s in self.streams.items() if s.kind == kind and not n.startswith("_"))


def _items(value: Any, key: str = "name") -> list[dict[str, Any]]:
    """A list of records from a list of dicts, a dict keyed by name, or a list of names."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{key: k, **(v if isinstance(v, dict) else {"value": v})} for k, v in value.items()]
    return [v if isinstance(v, dict) else {key: v} for v in value]


def _control(d: dict[str, Any], settings: dict[str, Any]) -> ControlInfo:
    limits = d.get("limits") or d.get("range")
    minimum = d.get("min", d.get("minimum", limits[0] if limits else None))
    maximum = d.get("max", d.get("maximum", limits[1] if limits else None))
    choices = d.get("choices") or d.get("values_allowed")
    kind = d.get("type") or d.get("kind") or ("choice" if choices else "number")
    if kind in ("float", "int", "number", "integer"):
        kind = "number"
    elif kind in ("bool", "boolean"):
        kind = "bool"
    return ControlInfo(
        name=d["name"],
        unit=d.get("unit") or "",
        minimum=None if minimum is None else float(minimum),
        maximum=None if maximum is None else float(maximum),
        choices=list(choices) if choices else None,
        read_only=bool(d.get("read_only", d.get("readonly", False))),
        kind="choice" if choices else kind,
        value=d.get("value", settings.get(d["name"])),
        doc=d.get("doc") or "",
    )


def _command(d: dict[str, Any]) -> CommandInfo:
    params = d.get("params", d.get("args", d.get("parameters", [])))
    names = [p["name"] if isinstance(p, dict) else str(p) for p in _items(params)] if params else []
    query = bool(d.get("query")) or d.get("changes_settings") is False
    return CommandInfo(d["name"], names, d.get("doc") or "", query)


def _axis_number(stream: str) -> int | None:
    """2 for 'stage/axis2_position'; None for 'hwp/position' (a single-axis device)."""
    digits = "".join(ch for ch in stream.rsplit("/", 1)[-1] if ch.isdigit())
    return int(digits) if digits else None


def parse_description(raw: dict[str, Any]) -> Description:
    """Read ``describe`` into records (see the module docstring)."""
    streams: dict[str, StreamInfo] = {}
    for s in _items(raw.get("streams")):
        streams[s["name"]] = StreamInfo(
            name=s["name"],
            kind=s.get("kind") or "scalar",
            unit=s.get("unit") or "",
            producer=s.get("producer") or "",
            long_name=s.get("long_name") or "",
            fields={str(k): str(v or "") for k, v in (s.get("fields") or {}).items()}
            if isinstance(s.get("fields"), dict)
            else {},
        )
    instruments = []
    for d in _items(raw.get("instruments")):
        own = []
        for s in _items(d.get("streams")):
            name = s["name"] if "/" in s["name"] else f"{d['name']}/{s['name']}"
            own.append(name)
            streams.setdefault(name, StreamInfo(name, s.get("kind") or "scalar", s.get("unit") or "", d["name"]))
        settings = d.get("settings")
        if not isinstance(settings, dict):
            settings = {}
        positions = sorted(s for s in own if s.endswith("position"))
        axes = d.get("axes") or settings.get("axes") or [int(a) for a in (_axis_number(s) for s in positions) if a]
        instruments.append(
            InstrumentInfo(
                name=d["name"],
                driver=d.get("driver") or "",
                capabilities=list(d.get("capabilities") or []),
                status=(d.get("status") or "").lower(),
                error=d.get("error") or d.get("last_error") or "",
                controls=[_control(c, settings) for c in _items(d.get("controls"))],
                commands=[_command(c) for c in _items(d.get("commands"))],
                streams=own,
                axes=[int(a) for a in axes] if isinstance(axes, list | tuple) else [],
                position_unit=d.get("position_unit") or (streams[positions[0]].unit if positions else ""),
                describe_error=str(
                    d.get("describe_error") or ("" if "driver" in d else f"{d.get('status') or 'starting'}")
                ),
            )
        )
    raw_plans = _items(raw.get("plans"))
    plans = {p["name"]: list(p.get("params") or p.get("parameters") or []) for p in raw_plans}
    docs = {p["name"]: str(p.get("doc") or "") for p in raw_plans}
    return Description(instruments, streams, plans, [str(a) for a in raw.get("actions") or []], docs)
