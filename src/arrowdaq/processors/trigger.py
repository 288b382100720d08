"""Trigger: capture segments of a scalar signal around events, like a scope.

Modes (``level`` is the threshold):

* ``edge``: the signal crosses ``level`` — ``rising`` (below, then at or
  above), ``falling`` (above, then at or below) or ``either``;
* ``level``: the signal is ``above`` (>=) or ``below`` (<=) ``level``; fires
  again after each dead time while the condition lasts;
* ``window``: the signal ``leave``-s or ``enter``-s the band [``low``, ``high``].

Each trigger captures ``pre`` samples before the trigger sample and ``post``
samples from it (the trigger sample is at index ``pre``, x = 0 s). The trigger
re-arms once the ``post`` samples and the ``holdoff`` time have both passed, so
captures never overlap unless ``pre`` reaches back into the previous one. A
trigger needs ``pre`` samples of history: none fires in the first ``pre``
samples of the signal or after a break (gap or NaN); a capture that a break
interrupts is discarded.

Outputs: ``<id>/segments`` (vector, x axis in seconds relative to the trigger,
stamped with the trigger time) and ``<id>/events`` (scalar: the value at each
trigger, stamped with its time).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from ..data import UNIFORM, scalar_batch, scalar_schema, vector_batch, vector_schema
from .base import Outputs, SignalParams, SignalProcessor
from .sampling import Segment

Mode = Literal["edge", "level", "window"]


class TriggerParams(SignalParams):
    mode: Mode = "edge"
    level: float | None = Field(None, description="threshold (edge, level modes), in the input's unit")
    slope: Literal["rising", "falling", "either"] = Field("rising", description="edge mode")
    condition: Literal["above", "below"] = Field("above", description="level mode")
    low: float | None = Field(None, description="window mode: lower edge of the band")
    high: float | None = Field(None, description="window mode: upper edge of the band")
    when: Literal["leave", "enter"] = Field("leave", description="window mode: fire on leaving or entering")
    pre: int = Field(0, ge=0, le=10_000_000, description="samples captured before the trigger")
    post: int = Field(100, ge=1, le=10_000_000, description="samples captured from the trigger on")
    holdoff: float = Field(0.0, ge=0, description="seconds from a trigger before the next may fire")

    @model_validator(mode="after")
    def _check_mode(self) -> TriggerParams:
        if self.mode in ("edge", "level") and self.level is None:
            raise ValueError(f"level: {self.mode} mode needs a level")
        if self.mode == "window" and (self.low is None or self.high is None or not self.low < self.high):
            raise ValueError(f"low, high: window mode needs low < high, got low={self.low}, high={self.high}")
        return self


class Trigger:
    """Finds triggers in a signal that arrives in chunks and cuts out their segments."""

    def __init__(self, p: TriggerParams, sample_rate: float) -> None:
        self.p = p
        self.length = p.pre + p.post
        self.dead_time = max(p.post, math.ceil(p.holdoff * sample_rate - 1e-9))
        self.reset()

    def reset(self) -> None:
        """Forget the past: the signal starts afresh."""
        self._values = np.empty(0)
        self._timestamps = np.empty(0, np.uint64)
        self._start = 0  # absolute index of _values[0]
        self._seen = 0  # samples since the reset
        self._armed_at = self.p.pre  # first index allowed to fire
        self._previous: bool | None = None  # condition at the last sample
        self._pending = np.empty(0, np.int64)  # triggers waiting for their post samples

    @property
    def held(self) -> int:
        """Samples kept for the pre-trigger history and the pending captures."""
        return len(self._values)

    @property
    def pending(self) -> int:
        """Captures still waiting for their post-trigger samples."""
        return len(self._pending)

    def _condition(self, x: np.ndarray) -> np.ndarray:
        p = self.p
        if p.mode == "window":
            inside = (x >= p.low) & (x <= p.high)
            return ~inside if p.when == "leave" else inside
        if p.mode == "level":
            return x >= p.level if p.condition == "above" else x <= p.level
        return x > p.level if p.slope == "falling" else x >= p.level

    def _candidates(self, x: np.ndarray) -> np.ndarray:
        """Indices in ``x`` where the trigger condition fires (before the dead time)."""
        c = self._condition(x)
        previous = self._previous
        self._previous = bool(c[-1])
        if self.p.mode == "level":
            return np.flatnonzero(c)
        before = np.concatenate(([c[0] if previous is None else previous], c[:-1]))
        if self.p.mode == "edge" and self.p.slope == "either":
            fired = c != before
        elif self.p.mode == "edge" and self.p.slope == "falling":
            fired = before & ~c
        else:
            fired = c & ~before
        return np.flatnonzero(fired)

    def process(self, timestamps_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Complete captures: ``(segments 2-D, trigger timestamps, trigger values)``."""
        first = self._seen
        self._values = np.concatenate((self._values, values))
        self._timestamps = np.concatenate((self._timestamps, timestamps_ns))
        self._seen += len(values)
        fired: list[int] = []
        candidates = first + self._candidates(values) if len(values) else np.empty(0, np.int64)
        i = int(np.searchsorted(candidates, self._armed_at))
        while i < len(candidates):  # one step per trigger, not per sample
            t = int(candidates[i])
            fired.append(t)
            self._armed_at = t + self.dead_time
            i = int(np.searchsorted(candidates, self._armed_at, side="left"))
        pending = np.concatenate((self._pending, np.asarray(fired, np.int64)))
        ready = pending[pending + self.p.post <= self._seen]
        self._pending = pending[pending + self.p.post > self._seen]
        local = ready - self._start
        segments = self._values[(local - self.p.pre)[:, None] + np.arange(self.length)]
        out = (segments, self._timestamps[local], self._values[local])
        keep_from = self._seen - self.p.pre
        if len(self._pending):
            keep_from = min(keep_from, int(self._pending.min()) - self.p.pre)
        keep_from = max(keep_from, self._start)
        self._values = self._values[keep_from - self._start :]
        self._timestamps = self._timestamps[keep_from - self._start :]
        self._start = keep_from
        return out


class TriggerProcessor(SignalProcessor[TriggerParams]):
    """Publishes ``<id>/segments`` (captures) and ``<id>/events`` (trigger times and values)."""

    kind = "trigger"

    def output_schemas(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        return {
            "segments": vector_schema(self.unit, "s", axis=UNIFORM, long_name="triggered segment"),
            "events": scalar_schema(self.unit, long_name="value at trigger"),
        }

    def start_signal(self, sample_rate: float) -> None:
        self.trigger = Trigger(self.params, sample_rate)
        self.dt = 1.0 / sample_rate

    def work(self, batch: pa.RecordBatch) -> float:
        p = self.params
        dead = self.trigger.dead_time if self._started else p.post
        held = self.trigger.held if self._started else p.pre
        # at most one capture of pre + post samples per dead time, and the held history is copied once
        return super().work(batch) + batch.num_rows * (p.pre + p.post) / max(dead, 1) + held

    def process(self, segment: Segment) -> Outputs:
        if segment.restart:
            if self.trigger.pending:
                self.problem(f"{self.where}: {self.trigger.pending} capture(s) cut by a break discarded", "cut")
            self.trigger.reset()
        rows, ts, values = self.trigger.process(segment.timestamps_ns, segment.values)
        if len(rows) == 0:
            return []
        return [
            (
                "segments",
                vector_batch(
                    rows,
                    channel=self.channel,
                    unit=self.unit,
                    x0=-self.params.pre * self.dt,
                    dx=self.dt,
                    x_unit="s",
                    timestamps_ns=ts,
                ),
            ),
            ("events", scalar_batch(values, channel=self.channel, unit=self.unit, timestamps_ns=ts)),
        ]
