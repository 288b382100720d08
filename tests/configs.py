"""Configurations the tests run, written where a user keeps them."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

from arrowdaq.app.config import Config, parse_config

#: A power meter, a rotation mount and a moving average on the simulators, recorded: most run tests start here.
SMALL = """
[run]
name = "small"
data_dir = "{data_dir}"

[storage]
flush_interval_s = 0.2

[[instruments]]
id = "pm1"
driver = "newport_1830c"
port = "sim"
poll_hz = 20.0

[[instruments]]
id = "hwp"
driver = "ell14"
port = "sim"
poll_hz = 5.0

[[processors]]
id = "pm1_avg"
kind = "moving_average"
inputs = "pm1/power"
params = {{ samples = 4, sample_rate = 20.0 }}

[simulation]
latency_scale = 0.01
"""


def write_config(tmp_path: Path, text: str, **fmt: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(textwrap.dedent(text).format(data_dir=tmp_path / "data", **fmt), encoding="utf-8")
    return path


def config_from(text: str, source: str = "lab.toml") -> Config:
    """The checked configuration of a TOML text (indented as in a test), as if read from ``source``."""
    return parse_config(tomllib.loads(textwrap.dedent(text)), source, environ={})
