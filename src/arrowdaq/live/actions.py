"""The ``do_action`` types: each is one async function ``(context, body) -> JSON-able reply``.

They run on the hub's loop. A new action is one function registered with
``@action("name")`` here, or ``service.add_action("name", handler)`` from the
assembly (the scan engine adds ``scan`` that way). An ArrowDAQError raised by
a handler goes back to the client with its text and type name.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow.flight as flight

from .. import __version__
from ..actors import ActorStatus, Command, Role
from ..data.schemas import unit_of
from ..errors import ArrowDAQError, CommandError, describe
from .protocol import ACTIONS, error_info

if TYPE_CHECKING:
    from ..hub import InstrumentManager
    from .server import LiveService


@dataclass
class ActionContext:
    service: LiveService
    client: str

    @property
    def hub(self) -> InstrumentManager:
        return self.service.hub


Handler = Callable[[ActionContext, dict[str, Any]], Awaitable[Any]]
ACTION_HANDLERS: dict[str, Handler] = {}


def action(name: str) -> Callable[[Handler], Handler]:
    """Register a built-in action handler."""
    if name not in ACTIONS:
        raise ValueError(f"action {name!r} is not in the contract (protocol.ACTIONS); add it there first")

    def register(fn: Handler) -> Handler:
        ACTION_HANDLERS[name] = fn
        return fn

    return register


def error_for_flight(exc: BaseException) -> flight.FlightError:
    """The daemon's error as a Flight error: the same text, the type's name in ``extra_info``."""
    return flight.FlightServerError(str(exc) or type(exc).__name__, extra_info=error_info(type(exc).__name__))


def _need(body: dict[str, Any], key: str, action_name: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f"{action_name}: {key!r} is required (a string), got {value!r}")
    return value


def _instrument(ctx: ActionContext, name: str) -> str:
    instruments = [n for n, ref in ctx.hub.supervisor.actors.items() if ref.role is Role.SOURCE]
    if name not in instruments:
        raise CommandError(f"no instrument named {name!r} (instruments: {', '.join(sorted(instruments)) or 'none'})")
    return name


def _timeout(body: dict[str, Any]) -> float:
    try:
        return max(0.1, float(body.get("timeout", 30.0)))
    except (TypeError, ValueError):
        raise CommandError(f"timeout: expected seconds, got {body.get('timeout')!r}") from None


@action("ping")
async def ping(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    return {"pong": True, "time_ns": time.time_ns(), "version": __version__, "client": ctx.client}


@action("describe")
async def describe_all(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    """Everything a control panel needs: instruments (controls, commands, streams), streams, processors."""
    hub = ctx.hub
    instruments: dict[str, Any] = {}
    for name, ref in hub.supervisor.actors.items():
        if ref.role is not Role.SOURCE:
            continue
        known = ctx.service.instruments.get(name)
        if known is None and ref.status is ActorStatus.RUNNING:
            try:
                known = await hub.command(name, "describe", timeout=5.0)
                ctx.service.instruments[name] = known
            except ArrowDAQError as exc:
                known = {"id": name, "describe_error": describe(exc)}
        entry = {**(known or {"id": name}), "name": name, "status": ref.status.value, "error": ref.last_error}
        declaration = entry.get("declaration") or {}
        if declaration.get("commands"):  # with their parameters and docs, for buttons and forms
            entry["commands"] = declaration["commands"]
        instruments[name] = entry
    streams = {
        name: {
            "producer": spec.producer,
            "kind": spec.kind,
            "unit": unit_of(spec.schema),
            "fields": {f.name: unit_of(spec.schema, f.name) for f in spec.schema},
        }
        for name, spec in hub.streams.items()
    }
    processors = {
        name: {"status": ref.status.value, "error": ref.last_error}
        for name, ref in hub.supervisor.actors.items()
        if ref.role is Role.PROCESSOR
    }
    daemon = ctx.service.daemon
    answer = {
        "instruments": instruments,
        "streams": streams,
        "processors": processors,
        "recording": daemon.recording_state() if daemon is not None else None,
        "actions": sorted(ctx.service.actions),
        "version": __version__,
    }
    for extra in ctx.service.describers:
        answer.update(extra())
    return answer


@action("status")
async def status(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    daemon = ctx.service.daemon
    return {
        **ctx.hub.status(),
        "live": ctx.service.snapshot(),
        "recording": daemon.recording_state() if daemon is not None else None,
        "time_ns": time.time_ns(),
    }


@action("command")
async def command(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    instrument = _instrument(ctx, _need(body, "instrument", "command"))
    name = _need(body, "command", "command")
    args = body.get("args") or {}
    if not isinstance(args, dict):
        raise CommandError(f"{instrument}.{name}: 'args' must be an object of keyword arguments, got {args!r}")
    result = await ctx.hub.command(instrument, Command(name, args, client=ctx.client), timeout=_timeout(body))
    return {"result": result}


@action("get")
async def get(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    instrument = _instrument(ctx, _need(body, "instrument", "get"))
    name = _need(body, "name", "get")
    value = await ctx.hub.command(instrument, Command("get", {"name": name}, client=ctx.client), timeout=_timeout(body))
    return {"value": value}


@action("set")
async def set_(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    instrument = _instrument(ctx, _need(body, "instrument", "set"))
    name = _need(body, "name", "set")
    if "value" not in body:
        raise CommandError(f"set: 'value' is required for {instrument}.{name}")
    cmd = Command("set", {"name": name, "value": body["value"]}, client=ctx.client)
    value = await ctx.hub.command(instrument, cmd, timeout=_timeout(body))
    return {"value": value}


@action("record")
async def record(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    daemon = ctx.service.daemon
    if daemon is None:
        raise CommandError("record: this daemon has no storage")
    what = body.get("action", "state")
    if what == "state":
        return daemon.recording_state()
    if what == "start":
        meta = {k: body[k] for k in ("name", "operator", "sample", "notes") if k in body}
        return await daemon.start_recording(client=ctx.client, **meta)
    if what == "stop":
        return await daemon.stop_recording(client=ctx.client)
    raise CommandError(f"record: unknown action {what!r} (actions: start, stop, state)")
