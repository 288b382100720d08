"""Configurations the tests run, written where a user keeps them.

A test that needs a configuration builds it from these pieces rather than writing the TOML
again: :func:`instrument` tables (:data:`PM1`, the power meter most tests read) inside
:func:`lab`, written by :func:`write_config` or checked by :func:`config_in`. A literal TOML
text stays in a test only where the text itself is what is tested (error messages naming a
line or a key). Texts here keep ``{data_dir}`` for the test's data folder and no other braces,
so they go through ``str.format`` as they are.
"""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

from arrowdaq.app.config import Config, parse_config

#: A serial port that exists on no machine: an instrument on it never connects.
DEAD_PORT = "/dev/ttyARROWDAQ-NONE"


def toml_value(value: object) -> str:
    """A TOML scalar or array (strings as JSON strings, which TOML reads the same)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def toml_tables(header: str, keys: dict[str, object]) -> str:
    """``[header]`` lines for ``keys``; a dict value becomes a sub-table (no inline ``{...}``: no braces)."""
    lines = [f"[{header}]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in keys.items() if not isinstance(value, dict)]
    for key, value in keys.items():
        if isinstance(value, dict):
            lines.append(toml_tables(f"{header.strip('[]')}.{key}", value))
    return "\n".join(lines)


def instrument(id: str, driver: str = "newport_1830c", port: str | None = "sim", **keys: object) -> str:
    """One ``[[instruments]]`` table: ``instrument("pm2", port=DEAD_PORT, required=False)``; a dict value
    (``settings={"timeout": 0.3}``) becomes its sub-table."""
    fields: dict[str, object] = {"id": id, "driver": driver}
    if port is not None:
        fields["port"] = port
    return toml_tables("[instruments]", {**fields, **keys}) + "\n"


def processor(id: str, kind: str, inputs: str, **params: object) -> str:
    """One ``[[processors]]`` table reading ``inputs``, with ``params`` as its sub-table."""
    return toml_tables("[processors]", {"id": id, "kind": kind, "inputs": inputs, "params": params}) + "\n"


#: The power meter most tests read: pm1 on its simulator, 20 readings/s.
PM1 = instrument("pm1", poll_hz=20.0)
#: A camera making 400 frames/s in a 2-frame buffer, read 20 times a second: most frames are dropped.
DROPPING_CAMERA = instrument(
    "cam1",
    "sim_camera",
    port=None,
    poll_hz=20.0,
    settings={"shape": [16, 16], "fps": 400.0, "exposure_s": 0.001, "buffer_frames": 2},
)


def lab(
    *tables: str,
    name: str = "lab",
    storage: dict[str, object] | None = None,
    latency_scale: float = 0.01,
    extra: str = "",
) -> str:
    """A whole configuration of ``tables`` (instruments, processors): its run named ``name``, recorded in
    ``{data_dir}``, storage flushed every 0.2 s (or ``storage``), simulators at ``latency_scale``."""
    parts = [
        toml_tables("run", {"name": name}) + '\ndata_dir = "{data_dir}"',
        toml_tables("storage", {"flush_interval_s": 0.2} if storage is None else storage),
        *(table.strip("\n") for table in tables),
        toml_tables("simulation", {"latency_scale": latency_scale}),
        extra.strip("\n"),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


#: A power meter, a rotation mount and a moving average on the simulators, recorded: most run tests start here.
SMALL = lab(
    PM1,
    instrument("hwp", "ell14", poll_hz=5.0),
    processor("pm1_avg", "moving_average", "pm1/power", samples=4, sample_rate=20.0),
    name="small",
)


def meters_with_one_on_a_dead_port(required: bool) -> str:
    """pm1 on its simulator, pm2 on a port that does not exist (``required`` or not)."""
    return lab(PM1, instrument("pm2", port=DEAD_PORT, required=required))


def write_config(tmp_path: Path, text: str, **fmt: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(textwrap.dedent(text).format(data_dir=tmp_path / "data", **fmt), encoding="utf-8")
    return path


def config_in(tmp_path: Path, text: str, source: str = "lab.toml", **fmt: str) -> Config:
    """The checked configuration of a TOML text with ``{data_dir}`` (as :func:`write_config` writes it)."""
    return config_from(text.format(data_dir=tmp_path / "data", **fmt), source)


def config_from(text: str, source: str = "lab.toml") -> Config:
    """The checked configuration of a TOML text (indented as in a test), as if read from ``source``."""
    return parse_config(tomllib.loads(textwrap.dedent(text)), source, environ={})
