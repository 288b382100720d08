"""The Processor actor: one input stream in, declared output streams out.

A processor is two parts. The algorithm is a plain object with state
(``process(chunk) -> output``, NumPy in and out, no asyncio), so it can be
tested and reused on its own. The actor around it (this module) checks the
input stream, declares the outputs, feeds the algorithm batch by batch and
publishes what comes out::

    hub.spawn("scope1_fft", lambda: FFTProcessor(hub, "scope1/trace", window_size=1024),
              inputs="scope1/trace")

Output streams are named ``<processor id>/<output>`` (``scope1_fft/spectrum``);
the id is the actor's name. Without ``id=`` the outputs are declared when the
actor starts; with it (or through :func:`arrowdaq.processors.build`) at
construction, so storage sees them before the actor runs.

Bad input never crashes the hub. What restarts and what does not:

* bad parameters, an input of the wrong kind, a query that does not run, a
  cut-off above the Nyquist frequency raise ProcessorConfigError (an
  ``Unrecoverable`` error): the actor is Failed at once with the message, as a
  restart would fail the same way. ``build`` raises it before anything starts;
* an input stream not declared yet raises ProcessorError at start: the
  supervisor retries with backoff (the instrument may declare it late);
* during the run, a batch that cannot be processed (wrong schema, irregular
  timestamps, a query failing on its values) is dropped and reported; gaps and
  NaN values are reported and the algorithm restarts after them
  (:mod:`.sampling`). Reports show as the actor's last error in
  ``hub.status()``, as status events and in the log (each kind of problem at
  most once per ``report_every`` seconds, with a count of the ones in between;
  the ``status`` command counts them all); the actor keeps running;
* any other exception is a bug: the actor restarts with fresh state.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Generic, TypeVar, cast, get_args

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ..actors import Actor, Command, Role
from ..data import SCALAR, kind_of, unit_of
from ..data.validate import check_schema
from ..errors import CommandError, ProcessorConfigError, ProcessorError, SchemaError, Unrecoverable
from ..hub.events import ERROR, LOST
from ..validation import validate
from .sampling import IrregularTimestamps, SampleClock, Segment, split_segments

Outputs = list[tuple[str, pa.RecordBatch]]

#: Batches whose estimated work (:meth:`Processor.work`) reaches this are
#: processed in the actor's worker thread, so the event loop stays responsive;
#: lighter ones on the loop, where a thread hop (~0.2 ms) would cost more than
#: the work (decision 0012). About half a millisecond here.
OFFLOAD_WORK = 500_000

#: Seconds of timestamps over which a configured sample_rate is compared with the data's own rate.
RATE_CHECK_S = 5.0


class ProcessorParams(BaseModel):
    """Parameters of a processor kind; unknown names are refused (a typo is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalParams(ProcessorParams):
    """Parameters shared by processors of an equally sampled scalar signal."""

    sample_rate: float | None = Field(None, gt=0, description="samples per second; None: learn it from the timestamps")
    timestamp_tolerance: float = Field(
        0.05, gt=0, lt=0.5, description="allowed relative jitter of the sampling interval"
    )


P = TypeVar("P", bound=ProcessorParams)
SP = TypeVar("SP", bound=SignalParams)


def parse_params(cls: type[P], params: dict[str, Any], where: str) -> P:
    """Validate ``params``; the error names each bad parameter, what is allowed and the value given."""
    return validate(cls, params, where, error=ProcessorConfigError, label="parameter", separator="; ")


def channel_of(batch: pa.RecordBatch) -> str:
    """The channel of a batch (constant within a stream)."""
    return str(batch.column("channel")[0].as_py()) if batch.num_rows else ""


class Processor(Actor, Generic[P]):
    """Base class of processors, generic over their parameters' model (``Processor[SQLParams]``).

    Subclasses set ``kind`` and ``accepts`` and implement :meth:`configure`
    (check the input, return the output schemas) and :meth:`transform` (one
    input batch to output batches; runs in the worker thread). The type argument
    is the model that checks the parameters: ``self.params`` is of that type.
    """

    role = Role.PROCESSOR
    kind: ClassVar[str] = ""
    #: The model checking the parameters, taken from the type argument (``class X(Processor[XParams])``).
    Params: ClassVar[type[ProcessorParams]] = ProcessorParams
    accepts: ClassVar[tuple[str, ...]] = (SCALAR,)
    #: Seconds between two reports of the same kind of problem (a NaN in every batch must not flood the log).
    report_every: ClassVar[float] = 1.0

    def __init__(self, hub: Any, input: str, *, id: str | None = None, **params: Any) -> None:
        self.hub = hub
        self.input = input
        self.id = id
        where = f"processor {id or type(self).__name__!r} ({self.kind})"
        # Params is the class's type argument P (__init_subclass__); a ClassVar cannot carry a type variable
        self.params: P = cast(P, parse_params(self.Params, params, where))
        self.outputs: dict[str, str] = {}
        self.input_schema: pa.Schema | None = None
        self.counters = {"batches_in": 0, "rows_in": 0, "batches_out": 0, "rows_out": 0, "problems": 0}
        self.last_problem: str | None = None
        self._problems: list[tuple[str, str]] = []
        self._reported_at: dict[str, float] = {}
        self._unreported: dict[str, int] = {}
        self._in_hand: Any = None  # the batch being processed
        if id is not None and input in hub.streams:
            self._prepare(id)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            for arg in get_args(base):
                model = arg.__bound__ if isinstance(arg, TypeVar) else arg
                if isinstance(model, type) and issubclass(model, ProcessorParams):
                    cls.Params = model

    # --- to implement ----------------------------------------------------------
    def configure(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        """Check the input against the parameters; return ``{output name: schema}``."""
        raise NotImplementedError

    def transform(self, batch: pa.RecordBatch) -> Outputs:
        """Process one input batch; return ``[(output name, batch), ...]``."""
        raise NotImplementedError

    async def finish(self) -> Outputs:
        """Results still held when the processor stops (e.g. an incomplete window)."""
        return []

    def work(self, batch: pa.RecordBatch) -> float:
        """Estimated cost of ``transform(batch)``, about in nanoseconds here; decides where it runs.

        The default is its bytes (measured: ~0.8 ns per byte for light
        processing). A processor whose work per sample grows with a parameter
        (FIR taps, FFT length, trigger history) adds that, so that no user-set
        size holds the event loop.
        """
        return float(batch.get_total_buffer_size())

    # --- helpers for subclasses -------------------------------------------------
    def problem(self, text: str, kind: str | None = None) -> None:
        """Note a non-fatal input problem (``kind`` groups repeats); reported once the batch is done."""
        self._problems.append((kind or text, text))

    @property
    def where(self) -> str:
        return f"processor {self.id!r} ({self.kind})"

    # --- the actor ----------------------------------------------------------------
    def _prepare(self, id: str) -> None:
        """Check the input stream and declare the outputs (idempotent)."""
        self.id = id
        spec = self.hub.streams.get(self.input)
        if spec is None:
            known = ", ".join(sorted(self.hub.streams)) or "none declared"
            raise ProcessorError(f"{self.where}: input stream {self.input!r} is not declared (streams: {known})")
        kind = kind_of(spec.schema)
        if self.accepts and kind not in self.accepts:
            raise ProcessorConfigError(
                f"{self.where}: input stream {self.input!r} is a {kind or 'custom'} stream, "
                f"expected {' or '.join(self.accepts)}"
            )
        self.input_schema = spec.schema
        schemas = self.configure(spec.schema)
        self.outputs = dict(zip(schemas, self.hub.declare_outputs(id, schemas, derived=True), strict=True))

    async def on_start(self) -> None:
        if self.id is not None and self.id != self.name:
            raise ProcessorConfigError(f"{self.where}: spawned as actor {self.name!r}; the id must be the actor name")
        if self.input_schema is None or self.id is None:
            self._prepare(self.name)

    async def on_batch(self, stream: str, batch: Any) -> None:
        self._in_hand = batch  # a stop that gives up while it is processed counts it as not processed
        try:
            await self._process(stream, batch)
        finally:
            self._in_hand = None

    async def _process(self, stream: str, batch: Any) -> None:
        try:
            if stream != self.input:
                raise ProcessorError(f"{self.where}: ignored a batch of {stream!r}; it reads only {self.input!r}")
            if not isinstance(batch, pa.RecordBatch):
                raise SchemaError(f"stream {stream!r}: expected a pyarrow.RecordBatch, got {type(batch).__name__}")
            assert self.input_schema is not None
            if not batch.schema.equals(self.input_schema, check_metadata=False):
                check_schema(batch.schema, self.input_schema, stream=stream)
            self.counters["batches_in"] += 1
            self.counters["rows_in"] += batch.num_rows
            if self.work(batch) >= OFFLOAD_WORK:
                outputs = await self.blocking(self.transform, batch)
            else:
                outputs = self.transform(batch)
        except Unrecoverable:
            raise  # parameters that cannot work with this input: Failed, with the message
        except (ProcessorError, SchemaError) as exc:
            self.problem(f"{exc}; batch dropped", kind=type(exc).__name__)
            outputs = []
        await self._publish(outputs)

    async def on_stop(self) -> None:
        if self.input_schema is not None:
            await self._publish(await self.finish())

    def on_abandoned(self, items: list[tuple[str, Any]], why: str) -> None:
        """The stop gave up on this processor (stuck in one batch): that batch and the input still queued
        are never processed, so its outputs in the run file are short. A ``lost`` event (input stream, rows,
        batches) for the event log and the summary, which ends the run with exit status 5 (decision 0201)."""
        in_hand = [] if self._in_hand is None else [self._in_hand]
        batches = [batch for batch in in_hand + [batch for _, batch in items] if isinstance(batch, pa.RecordBatch)]
        if not batches:
            return
        rows = sum(batch.num_rows for batch in batches)
        reason = f"in hand or still queued when the stop gave up: {why}"
        outputs = sorted(self.outputs.values())
        message = (
            f"{self.where}: {rows} row(s) in {len(batches)} batch(es) of {self.input} not processed: {reason}; "
            f"missing from {', '.join(outputs) or 'its outputs'}"
        )
        self.report(message)
        self.hub.record_event(
            self.name,
            LOST,
            message,
            ERROR,
            stream=self.input,
            rows=rows,
            batches=len(batches),
            reason=reason,
            processor=self.name,
            outputs=outputs,
        )

    async def _publish(self, outputs: Outputs) -> None:
        for name, out in outputs:
            if out.num_rows:
                await self.hub.publish(self.outputs[name], out)
                self.counters["batches_out"] += 1
                self.counters["rows_out"] += out.num_rows
        if self._problems:
            problems, self._problems = self._problems, []
            self._report(problems)

    def _report(self, problems: list[tuple[str, str]]) -> None:
        now = time.monotonic()
        for kind, text in problems:
            self.counters["problems"] += 1
            self.last_problem = text
            last = self._reported_at.get(kind)
            if last is not None and now - last < self.report_every:
                self._unreported[kind] = self._unreported.get(kind, 0) + 1
                continue
            skipped = self._unreported.pop(kind, 0)
            self._reported_at[kind] = now
            self.report(f"{text} (and {skipped} more like it since the last report)" if skipped else text)

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Command) and message.action == "status":
            return {
                "id": self.id,
                "kind": self.kind,
                "input": self.input,
                "outputs": dict(self.outputs),
                **self.counters,
                "last_problem": self.last_problem,
            }
        action = getattr(message, "action", type(message).__name__)
        raise CommandError(f"{self.where}: unknown command {action!r} (known: status)")


class SignalProcessor(Processor[SP]):
    """A processor of one equally sampled scalar signal, cut at gaps and NaNs.

    Subclasses implement :meth:`start_signal` (the sample rate is known: build
    the algorithm) and :meth:`process` (one unbroken segment).
    """

    def configure(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        self.unit = unit_of(input_schema, "value")
        p = self.params
        self.clock = SampleClock(self.input, p.sample_rate, p.timestamp_tolerance)
        self._held: tuple[np.ndarray, np.ndarray] | None = None
        self._relearning: tuple[float, str] | None = None  # (the rate before, why) while a new one is learnt
        self._broken = False
        self._started = False
        self.channel = ""
        self._rate_window: tuple[int, int] | None = None  # (first timestamp, samples after it)
        self._rate_mismatch = False
        return self.output_schemas(input_schema)

    def output_schemas(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        raise NotImplementedError

    def start_signal(self, sample_rate: float) -> None:
        """The sample rate is known: build the algorithm."""
        raise NotImplementedError

    def process(self, segment: Segment) -> Outputs:
        """Process samples that follow the previous ones without a break (unless ``segment.restart``)."""
        raise NotImplementedError

    def _clock(self, ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The samples to process and the gaps before them; gaps None: hold them, the rate is still unknown."""
        try:
            return ts, values, self.clock.gaps(ts)
        except IrregularTimestamps as exc:
            if self.clock.configured:
                raise
            if self.clock.sample_rate is None:  # still learning: drop up to the last irregular interval
                self.problem(f"{exc}; {exc.resume_at} sample(s) dropped", type(exc).__name__)
                return self._clock(ts[exc.resume_at :], values[exc.resume_at :])
            # A batch regular on its own means the instrument's rate changed: relearn it. One too short
            # to tell (a polled instrument's single sample) is held, and the rate learnt again from it on.
            fresh = SampleClock(self.input, None, self.clock.tolerance)
            breaks = fresh.gaps(ts)  # irregular on its own too: raises, the batch is dropped
            self._relearning = (self.clock.sample_rate, str(exc))
            self.clock, self._started, self._broken = fresh, False, True
            return ts, values, breaks

    def _report_relearnt(self, rate: float) -> None:
        assert self._relearning is not None
        old, reason = self._relearning
        self._relearning = None
        if abs(rate / old - 1.0) > self.clock.tolerance:
            self.problem(
                f"{self.where}: the sample rate of {self.input!r} changed from {old:.6g} Hz to "
                f"{rate:.6g} Hz; the signal restarts",
                "rate",
            )
        else:
            self.problem(f"{self.where}: {reason}; the signal restarts", "rate")

    async def on_batch(self, stream: str, batch: Any) -> None:
        clock = getattr(self, "clock", None)  # None: a subclass reads blocks (an FFT of traces), not samples
        if clock is not None and clock.configured and stream == self.input and isinstance(batch, pa.RecordBatch):
            self._check_configured_rate(batch.column("timestamp_ns").to_numpy())  # on the loop: it may alarm
        await super().on_batch(stream, batch)

    def _check_configured_rate(self, ts: np.ndarray) -> None:
        """A configured ``sample_rate`` is trusted for the algorithm, but compared with the rate the
        timestamps show over every :data:`RATE_CHECK_S` s: beyond the tolerance, an alarm."""
        if self._rate_window is None:
            self._rate_window = (int(ts[0]), len(ts) - 1)
            return
        first, count = self._rate_window
        count += len(ts)
        span_ns = int(ts[-1]) - first
        if span_ns < RATE_CHECK_S * 1e9:
            self._rate_window = (first, count)
            return
        self._rate_window = (int(ts[-1]), 0)
        measured, configured = count * 1e9 / span_ns, self.clock.sample_rate or 0.0
        tolerance = self.clock.tolerance
        mismatch = abs(measured / configured - 1.0) > tolerance
        if mismatch and not self._rate_mismatch:
            text = (
                f"{self.where}: {self.input!r} arrives at {measured:.4g} samples/s, not the configured "
                f"sample_rate {configured:.4g} (beyond the {tolerance:.0%} tolerance): its frequencies are off"
            )
            self.hub.alarm(self.id or self.name, text)
            self.ref.report_error(text)
        elif self._rate_mismatch and not mismatch:
            self.hub.record_event(
                self.id or self.name,
                "rate",
                f"{self.where}: {self.input!r} arrives at the configured sample_rate again ({measured:.4g}/s)",
            )
        self._rate_mismatch = mismatch

    def transform(self, batch: pa.RecordBatch) -> Outputs:
        if batch.num_rows == 0:
            return []
        self.channel = self.channel or channel_of(batch)  # constant within a stream
        ts = batch.column("timestamp_ns").to_numpy()
        values = batch.column("value").to_numpy()
        if self._held is not None:  # samples that came before the rate was known
            ts, values = np.concatenate((self._held[0], ts)), np.concatenate((self._held[1], values))
            self._held = None
        ts, values, breaks = self._clock(ts, values)
        if breaks is None or self.clock.sample_rate is None:
            self._held = (ts, values) if len(ts) else None
            return []
        if not self._started:
            if self._relearning is not None:
                self._report_relearnt(self.clock.sample_rate)
            self.start_signal(self.clock.sample_rate)
            self._started = True
        segments, n_nan, self._broken = split_segments(ts, values, breaks, self._broken)
        if n_nan:
            self.problem(f"{self.where}: {n_nan} NaN value(s) in {self.input!r}; the signal restarts after them", "nan")
        n_gaps = int(breaks.sum())
        if n_gaps:
            first = int(np.argmax(breaks))
            self.problem(
                f"{self.where}: {n_gaps} gap(s) in the timestamps of {self.input!r}, the first before "
                f"t={ts[first] / 1e9:.9f} s; the signal restarts after each",
                "gap",
            )
        outputs: Outputs = []
        for segment in segments:
            outputs += self.process(segment)
        return outputs
