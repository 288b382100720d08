"""Stream declarations: a name ``<instrument>/<stream>``, its schema, its producer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from ..data.schemas import kind_of, plain_schema
from ..data.validate import required_columns
from ..errors import StreamError
from .metrics import FlowMeter

STREAM_NAME = re.compile(r"^[^/\s*?\[\]]+/[^/\s*?\[\]]+$")


def check_stream_name(name: str) -> str:
    if not STREAM_NAME.match(name):
        raise StreamError(f"stream name {name!r} must look like '<instrument>/<stream>', e.g. 'pm1/power'")
    return name


@dataclass
class StreamSpec:
    """A stream declared on the hub, and its counters. ``schema`` is what its batches must match;
    ``derived``: a processor computes it from other streams (not measured)."""

    name: str
    schema: pa.Schema
    producer: str | None = None
    derived: bool = False
    meter: FlowMeter = field(default_factory=FlowMeter, repr=False, compare=False)
    subscribers: list = field(default_factory=list, repr=False, compare=False)
    required: tuple[int, ...] = field(default=(), repr=False, compare=False)
    #: Rows per second the producer was asked for (a polling rate, a camera's frame rate); None: not known.
    requested_rate: float | None = field(default=None, compare=False)
    #: Rows the producer lost before publishing them (camera frames overwritten in its buffer).
    dropped: int = field(default=0, compare=False)
    #: Readings the producer was asked for and gave up (a fast poll that fell behind its rate);
    #: :class:`~arrowdaq.hub.rates.RateWatch` raises the rate alarm for them.
    missed: int = field(default=0, compare=False)
    #: Below its requested rate now, as RateWatch judged it at its last check (status shows it).
    slow: bool = field(default=False, compare=False)
    #: The newest batch published (what a live view shows as the last value).
    last: pa.RecordBatch | None = field(default=None, repr=False, compare=False)
    #: Delivered only to subscriptions that name it (a pattern whose first segment is the stream's own,
    #: e.g. ``scan/*``), not to catch-alls (``*``): ``scan/points`` changes its schema with each scan.
    explicit: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        self.required = required_columns(self.schema)

    @property
    def kind(self) -> str | None:
        return kind_of(self.schema)

    @property
    def plain_schema(self) -> pa.Schema:
        """The schema with string columns decoded: exports and the live service's wire (readers keep the
        dictionary encoding, decision 0023)."""
        return plain_schema(self.schema)
