"""Windowed statistics (mean, std, min, max, count) of a scalar stream, via Polars.

Windows are either fixed time intervals aligned to the epoch (``period``
seconds: a 1 s window holds the samples of one wall-clock second) or runs of
``rows`` consecutive samples. A window is published once a sample past its end
arrives (time) or once it is full (rows), so results do not depend on how the
input was split into batches; the last, incomplete window is published when the
processor stops. The timestamp of a result is the start of its window (time
windows) or the time of its first sample (row windows). ``std`` is the sample
standard deviation (ddof=1; NaN for a single sample).

Samples need not be equally spaced, so this processor does not check
timestamps for gaps. NaN values are dropped and reported.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field, model_validator

from ..data import scalar_batch, scalar_schema, unit_of
from .base import Outputs, Processor, ProcessorParams, channel_of

Statistic = Literal["mean", "std", "min", "max", "count"]
STATISTICS: tuple[Statistic, ...] = ("mean", "std", "min", "max", "count")

_AGGREGATES = {
    "mean": pl.col("v").mean(),
    "std": pl.col("v").std(),
    "min": pl.col("v").min(),
    "max": pl.col("v").max(),
    "count": pl.col("v").count().cast(pl.Float64),
}


class WindowStatistics:
    """Statistics of consecutive windows; holds the samples of the window still open."""

    def __init__(
        self, *, period_ns: int | None = None, rows: int | None = None, stats: tuple[Statistic, ...] = STATISTICS
    ) -> None:
        if (period_ns is None) == (rows is None):
            raise ValueError("give either period_ns or rows")
        self.period_ns = period_ns
        self.rows = rows
        self.stats = stats
        self._ts = np.empty(0, np.uint64)
        self._v = np.empty(0, np.float64)

    def process(self, timestamps_ns: np.ndarray, values: np.ndarray) -> pl.DataFrame:
        """Statistics of the windows these samples complete: ``start_ns`` and one column per statistic."""
        ts = np.concatenate((self._ts, timestamps_ns))
        v = np.concatenate((self._v, values))
        keys: np.ndarray
        if self.period_ns is not None:
            keys = ts // np.uint64(self.period_ns)
            done = int(np.searchsorted(keys, keys[-1])) if len(keys) else 0
        else:
            assert self.rows is not None
            keys = np.arange(len(v)) // self.rows
            done = (len(v) // self.rows) * self.rows
        self._ts, self._v = ts[done:], v[done:]
        return self._aggregate(keys[:done], ts[:done], v[:done])

    def flush(self) -> pl.DataFrame:
        """The statistics of the incomplete window, if it holds any samples."""
        ts, v = self._ts, self._v
        self._ts, self._v = ts[:0], v[:0]
        keys = ts // np.uint64(self.period_ns) if self.period_ns else np.zeros(len(v), np.int64)
        return self._aggregate(keys, ts, v)

    def _aggregate(self, keys: np.ndarray, ts: np.ndarray, v: np.ndarray) -> pl.DataFrame:
        frame = pl.DataFrame({"k": keys, "t": ts, "v": v})
        start = pl.col("t").first() if self.rows else pl.col("k").first() * self.period_ns
        return (
            frame.group_by("k", maintain_order=True)
            .agg(start.cast(pl.UInt64).alias("start_ns"), *(_AGGREGATES[s].alias(s) for s in self.stats))
            .drop("k")
            .with_columns(pl.col(*self.stats).fill_null(float("nan")))
        )


class StatisticsParams(ProcessorParams):
    period: float | None = Field(None, gt=0, description="window length in seconds (aligned to the epoch)")
    rows: int | None = Field(None, ge=1, description="window length in samples")
    stats: tuple[Statistic, ...] = Field(STATISTICS, min_length=1, description="which statistics to publish")

    @model_validator(mode="after")
    def _one_window(self) -> StatisticsParams:
        if (self.period is None) == (self.rows is None):
            raise ValueError("give exactly one of period (seconds) or rows (samples)")
        if len(set(self.stats)) != len(self.stats):
            raise ValueError(f"stats: each statistic once, got {list(self.stats)}")
        return self


class StatisticsProcessor(Processor[StatisticsParams]):
    """Publishes one scalar stream per statistic: ``<id>/mean``, ``<id>/std``, ... ``<id>/count``."""

    kind = "statistics"

    def configure(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        p = self.params
        self.unit = unit_of(input_schema, "value")
        self.channel = ""
        period_ns = None if p.period is None else max(1, round(p.period * 1e9))
        self.windows = WindowStatistics(period_ns=period_ns, rows=p.rows, stats=p.stats)
        return {s: scalar_schema(None if s == "count" else self.unit) for s in p.stats}

    def transform(self, batch: pa.RecordBatch) -> Outputs:
        if batch.num_rows == 0:
            return []
        self.channel = self.channel or channel_of(batch)
        ts = batch.column("timestamp_ns").to_numpy()
        v = batch.column("value").to_numpy()
        nan = np.isnan(v)
        if nan.any():
            self.problem(f"{self.where}: {int(nan.sum())} NaN value(s) in {self.input!r} dropped", "nan")
            ts, v = ts[~nan], v[~nan]
        return self._results(self.windows.process(ts, v))

    async def finish(self) -> Outputs:
        return self._results(self.windows.flush())

    def _results(self, frame: pl.DataFrame) -> Outputs:
        if frame.height == 0:
            return []
        ts = frame["start_ns"].to_numpy()
        return [
            (
                s,
                scalar_batch(
                    frame[s].to_numpy(),
                    channel=self.channel,
                    unit=None if s == "count" else self.unit,
                    timestamps_ns=ts,
                ),
            )
            for s in self.params.stats
        ]
