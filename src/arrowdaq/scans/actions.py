"""The ``scan`` action of the live service: one JSON body in, one JSON reply out.

``{"action": "submit", "plan": "scan", "args": {"axis": "hwp", "start": 0, "stop": 90, "num": 46},
"detectors": ["pm1"], "settle": 0, "reads": 1}`` (``args`` may also be a list, in the plan's order,
with keyword arguments in ``kwargs``;
``detectors``, ``settle`` and ``reads`` may also be given inside ``args``, as the GUI's forms do);
``pause`` (``immediate``: true/false), ``resume``, ``stop``, ``abort``, ``state``, ``dry_run`` (as
submit), ``plans``. Every reply but ``plans`` and ``dry_run`` is the engine's state (see
:meth:`ScanService.status`), with ``scan_id`` (the scan's run id). ``state`` with ``scan_id`` and/or
``since`` (a point index) and ``wait`` (seconds) also returns ``points`` (rows from ``since`` on) once
there is something new, and ``outcome`` when that scan has ended: a client follows a scan with it
(:meth:`ScanService.follow`). Errors are CommandErrors with the text a local caller gets.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import CommandError
from .plans import PLANS
from .service import ScanService, build_plan

#: The longest a ``state`` call waits for something new (below the service's call timeout).
MAX_WAIT_S = 10.0
ACTIONS = ("submit", "pause", "resume", "stop", "abort", "state", "dry_run", "plans")
#: Options of every plan, besides its own parameters.
RUN_OPTIONS: tuple[dict[str, Any], ...] = (
    {"name": "detectors", "type": "list[str]", "doc": "detectors read at each point, e.g. pm1", "required": False},
    {"name": "settle", "type": "float", "default": 0.0, "unit": "s", "doc": "wait after each move"},
    {"name": "reads", "type": "int", "default": 1, "doc": "readings of each detector per point"},
)


def plan_parameters(named: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Each built-in plan with its parameters (name, default, required, type) and doc: for forms; then
    each configured scan (``named``), whose only parameters are the run options, set as configured."""
    out = _builtin_parameters()
    for name, entry in (named or {}).items():
        args = entry.get("args") or {}
        shown = " ".join(map(str, args)) if isinstance(args, list) else " ".join(f"{k}={v}" for k, v in args.items())
        configured = {
            "detectors": entry.get("detectors") or None,
            "settle": entry.get("settle"),
            "reads": entry.get("reads"),
        }
        params = [dict(o) | ({"default": configured[o["name"]]} if configured[o["name"]] else {}) for o in RUN_OPTIONS]
        doc = entry.get("doc") or f"configured: {entry['plan']} {shown}".strip()
        out.append({"name": name, "doc": doc, "params": params, "configured": dict(entry)})
    return out


def _builtin_parameters() -> list[dict[str, Any]]:
    out = []
    for name, fn in PLANS.items():
        params = []
        for p in inspect.signature(fn).parameters.values():
            kind = "str" if p.annotation == "AxisRef" else str(p.annotation)
            item: dict[str, Any] = {"name": p.name, "type": kind, "required": p.default is p.empty}
            if p.default is not p.empty:
                item["default"] = p.default
            params.append(item)
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        out.append({"name": name, "doc": doc, "params": params + [dict(o) for o in RUN_OPTIONS]})
    return out


def plan_request(
    body: Mapping[str, Any], named: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Any, list[str], dict[str, Any]]:
    """The plan, detectors and options (settle, reads, name) of a ``submit`` body. ``plan`` may name a
    configured scan (``named``: ``[[scans]]`` entries by name), which takes no arguments; detectors,
    settle and reads given beside it replace the configured ones."""
    name = body.get("plan")
    named = named or {}
    if not isinstance(name, str) or not name:
        raise CommandError(f"scan submit: give a plan name (plans: {', '.join(PLANS)}){_configured(named)}")
    if name not in PLANS and name in named:
        body = _options_out_of_args(body)
        if body.get("args") or body.get("kwargs"):
            raise CommandError(f"scan {name!r} is configured ([[scans]]): it takes no arguments")
        entry = named[name]
        given = {k: body[k] for k in ("detectors", "settle", "reads") if body.get(k) not in (None, [], "")}
        body, name = {**entry, **given, "name": name}, entry["plan"]
    elif name not in PLANS:
        raise CommandError(f"unknown plan {name!r} (plans: {', '.join(PLANS)}){_configured(named)}")
    raw: Any = body.get("args") or {}
    options = {k: body[k] for k in ("settle", "reads", "name") if body.get(k) is not None}
    detectors: Any = body.get("detectors") or []
    keywords: Any = body.get("kwargs") or {}
    if not isinstance(keywords, Mapping):
        raise CommandError(f"scan submit: kwargs must be an object, got {type(keywords).__name__}")
    if isinstance(raw, Mapping):
        raw, keywords = [], {**raw, **keywords}
    if not isinstance(raw, list):
        raise CommandError(f"scan submit: args must be an object or a list, got {type(raw).__name__}")
    keywords = dict(keywords)
    detectors = keywords.pop("detectors", None) or detectors
    options |= {k: keywords.pop(k) for k in ("settle", "reads") if k in keywords}
    plan = build_plan(name, *raw, **keywords)
    if isinstance(detectors, str):
        detectors = detectors.replace(",", " ").split()
    return plan, [str(d) for d in detectors], options


def _options_out_of_args(body: Mapping[str, Any]) -> dict[str, Any]:
    """The run options a form sends among the arguments (``args: {detectors, settle, reads}``), beside them."""
    body = dict(body)
    for key in ("args", "kwargs"):
        if isinstance(body.get(key), Mapping):
            values = dict(body[key])
            for option in ("detectors", "settle", "reads"):
                if option in values:
                    body[option] = values.pop(option)
            body[key] = values
    return body


def _configured(named: Mapping[str, Any]) -> str:
    return f"; configured scans: {', '.join(named)}" if named else ""


async def scan_action(service: ScanService, body: Mapping[str, Any] | None, client: str = "local") -> Any:
    """Run one ``scan`` action for ``client`` (named in the event log); see the module docstring."""
    body = dict(body or {})
    action = body.get("action", "state")
    if action == "submit":
        plan, detectors, options = plan_request(body, service.named)
        await service.submit(plan, detectors, client=client, **options)
    elif action == "dry_run":
        plan, detectors, options = plan_request(body, service.named)
        options.pop("name", None)
        dry = await service.dry_run(plan, detectors, **options)
        return {
            "points": dry.points,
            "estimated_s": dry.estimated_s,
            "problems": dry.problems,
            "ok": dry.ok,
            "decided_as_it_goes": dry.decided_as_it_goes,
        }
    elif action == "pause":
        service.pause(bool(body.get("immediate", False)), client=client)
    elif action in ("resume", "stop", "abort"):
        getattr(service, action)(client=client)
    elif action == "plans":
        return plan_parameters(service.named)
    elif action == "state" and ("since" in body or "scan_id" in body):
        return await service.follow(body.get("scan_id"), _count(body.get("since", 0), "since"), _wait(body))
    elif action != "state":
        raise CommandError(f"scan: unknown action {action!r} (actions: {', '.join(ACTIONS)})")
    return service.status()


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CommandError(f"scan state: {key!r} must be a point index >= 0, got {value!r}")
    return value


def _wait(body: Mapping[str, Any]) -> float:
    value = body.get("wait", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_WAIT_S:
        raise CommandError(f"scan state: 'wait' must be seconds from 0 to {MAX_WAIT_S:g}, got {value!r}")
    return float(value)
