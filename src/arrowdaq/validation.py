"""One way to check configured values, with one error format.

The configuration's sections, processor parameters, a driver's port settings and
storage options are pydantic models; their errors all go through
:func:`error_lines`: one line per bad key, naming where, the key path, what is
wrong (every alternative of a union joined by "or") and the value given::

    lab.toml: instruments[0].poll_hz: Input should be a valid number or Input should be a valid dictionary (got 'fast')
    processor 'lp' (filter): parameter 'cutoff': Input should be greater than 0 (got -1.0)

:func:`validate` runs a model and raises the caller's error type with those lines;
:func:`check` does the same for one value of a type. The types of values that more
than one part configures (the configuration and the storage options) are here too,
so each is defined and checked once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StrictInt, TypeAdapter, ValidationError

from .errors import ConfigError

M = TypeVar("M", bound=BaseModel)

#: Parts of an error location that name a branch of a union, not a key (``float``, ``dict[str,float]``,
#: ``function-after[...]``, ``constrained-str``): they say nothing to a user. A plain type name is a branch
#: only where a union's branches failed side by side (a key may be called ``set``).
_TYPE_NAMES = {"float", "int", "str", "bool", "bytes", "none", "list", "dict", "tuple", "set"}


def key_path(loc: tuple[int | str, ...], in_union: bool = False) -> str:
    """``("instruments", 0, "poll_hz", "float")`` → ``"instruments[0].poll_hz"`` (``in_union``: the last part
    may be a branch's type name)."""
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in part or part.startswith("constrained-") or (in_union and part in _TYPE_NAMES and i == len(loc) - 1):
            continue
        else:
            path += f".{part}" if path else part
    return path


def _shows(message: str, value: Any) -> bool:
    """Whether the message already quotes the text given (``unknown filter 'zzz'``), so ``(got ...)``
    would repeat it (a number in a message may be a limit: ``greater than 0``)."""
    return isinstance(value, str) and repr(value) in message


def error_lines(
    exc: ValidationError,
    where: str = "",
    *,
    prefix: str = "",
    label: str = "key",
    given: Mapping[str, str] | None = None,
) -> list[str]:
    """One line per bad key of ``exc``: ``"<where>: <key path>: <what is wrong> (got <value>)"``.

    ``prefix`` is the key path of what was validated (``"storage"``); ``label="parameter"`` names keys as ``parameter 'cutoff'``; ``given`` maps a key path to where its
    value came from instead of ``where`` (an environment variable), for that key and the keys in it."""
    problems: dict[str, tuple[list[str], Any, bool]] = {}
    errors = exc.errors()
    for err in errors:
        loc = err["loc"]
        beside = [o["loc"] for o in errors if o is not err and o["loc"][: len(loc) - 1] == loc[:-1]]
        path = key_path(loc, in_union=bool(beside))  # a union fails with one error per branch, side by side
        path = prefix + ("" if path.startswith("[") else ".") + path if prefix and path else prefix or path
        if err["type"] == "missing":
            message = f"required {label} is missing"
        elif err["type"] == "extra_forbidden":
            message = f"unknown {label}"
        else:
            message = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        show = err["type"] != "missing" and not isinstance(value, dict)
        messages, _, _ = problems.setdefault(path, ([], value, show))
        if message not in messages:
            messages.append(message)
    lines = []
    for path, (messages, value, show) in problems.items():
        if any(other.startswith((path + ".", path + "[")) for other in problems):
            continue  # the error inside says more (a list's length after a bad item was dropped)
        message = " or ".join(messages)
        got = f" (got {value!r})" if show and not _shows(message, value) else ""
        key = f"{label} {path!r}" if label != "key" and path else path
        origin = next((o for p, o in (given or {}).items() if path == p or path.startswith((p + ".", p + "["))), where)
        lines.append(": ".join(part for part in (origin, key, message + got) if part))
    return lines


def validate(
    model: type[M],
    data: Mapping[str, Any],
    where: str = "",
    *,
    prefix: str = "",
    error: type[Exception] = ConfigError,
    label: str = "key",
    separator: str = "\n",
) -> M:
    """``model`` built from ``data``; ``error`` (ConfigError) with :func:`error_lines` if it does not fit."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(separator.join(error_lines(exc, where, prefix=prefix, label=label))) from None


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def check(kind: Any, value: Any, key: str, where: str = "", *, error: type[Exception] = ConfigError) -> Any:
    """``value`` as the type ``kind`` (with its constraints, e.g. ``Annotated[int, Field(ge=1)]``);
    ``error`` naming ``key`` if it does not fit."""
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as exc:
        raise error("\n".join(error_lines(exc, where, prefix=key))) from None


# --- types of values the configuration and the parts it configures share ----------------------
#: A run file's layout.
Layout = Literal["nexus", "arrow_ipc"]
#: The HDF5 filters h5py takes by name, with their registered ids; others are given by id (e.g. from hdf5plugin).
NAMED_FILTERS = {"gzip": 1, "lzf": 32000, "szip": 4}


def check_filter(name: str | int | None) -> str | int | None:
    """A filter h5py knows by name, or the id of a filter registered in this HDF5 build."""
    if name is None:
        return None
    filter_id = NAMED_FILTERS.get(name) if isinstance(name, str) else name
    if filter_id is None:
        raise ValueError(
            f"unknown filter {name!r} (known by name: {', '.join(NAMED_FILTERS)}, or none;"
            " other filters by their HDF5 filter id, once registered e.g. by `import hdf5plugin`)"
        )
    from h5py import h5z  # when a filter is named: not for `arrowdaq --help`

    if not h5z.filter_avail(filter_id):
        raise ValueError(f"filter {name!r} is not available in this HDF5 build")
    return name


def no_filter(value: Any) -> Any:
    """``"none"`` and ``false`` (TOML has no null) mean no filter; ``true`` names none."""
    if value is False or (isinstance(value, str) and value.lower() == "none"):
        return None
    if value is True:
        raise ValueError('true is not a filter: name one (e.g. "gzip"), or "none" for no filter')
    if value is not None and not isinstance(value, str | int):
        raise ValueError(
            f'expected a filter name (e.g. "gzip"), an HDF5 filter id or "none", not a {type(value).__name__}'
        )
    return value


#: An HDF5 filter: its name (``"gzip"``), a registered filter id, or None (no filter; also
#: ``"none"`` or ``false`` in a configuration file).
Filter = Annotated[str | StrictInt | None, BeforeValidator(no_filter), AfterValidator(check_filter)]
#: Seconds between flushes of a run file, at most.
FlushInterval = Annotated[float, Field(gt=0)]
