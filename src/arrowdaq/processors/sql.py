"""A processor defined by a Polars SQL query over each batch.

For a transformation without writing a class::

    SELECT timestamp_ns, channel, value * 1000 AS value, unit FROM batch WHERE value > 0

The input batch is the table ``batch``. The query runs on each batch alone (no
state across batches: an aggregate is per batch). It is checked at start by
running it on an empty table of the input's schema, so a syntax error, an
unknown column or a type error stops the processor with the query problem
before any data flows.

The output ``<id>/result`` keeps the input's schema (kind) when the query
returns the input's columns with their types; otherwise it is a stream of the
query's own columns (a producer-declared schema, no kind).

The output's unit follows the query, everywhere the unit shows (the stream's
schema, the run file, ``inspect``, the summary): the ``unit`` parameter when
given (it also fills a ``unit`` column), else what the query's ``unit`` column
says (``value * 1000 AS value, 'mW' AS unit`` is in mW), found at start by
running the query on one sample row; a batch whose ``unit`` column says
otherwise is reported.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
import pyarrow as pa
from pydantic import Field, field_validator

from ..data import from_polars, plain_schema, to_polars
from ..data.schemas import UNIT_KEY, plain_type, unit_of
from ..errors import ProcessorConfigError, ProcessorError
from .base import Outputs, Processor, ProcessorParams


class SQLParams(ProcessorParams):
    query: str = Field(description="a Polars SQL query over the table 'batch'")
    unit: str | None = Field(None, description="the output's unit; default: the query's unit column, else the input's")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("query is empty; write e.g. SELECT * FROM batch WHERE value > 0")
        return query


def run_query(query: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The query's result on ``frame`` (the table ``batch``)."""
    return pl.SQLContext(frames={"batch": frame}).execute(query, eager=True)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _sample_row(schema: pa.Schema, unit: str | None) -> pl.DataFrame:
    """One row of ``schema``: numbers 1, strings empty, the ``unit`` column the input's unit."""
    arrays = []
    for f in plain_schema(schema):
        if f.name == "unit":
            arrays.append(pa.array([unit], f.type))
        elif pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            arrays.append(pa.array([1], f.type))
        elif pa.types.is_string(f.type):
            arrays.append(pa.array([""], f.type))
        else:
            arrays.append(pa.nulls(1, f.type))
    return to_polars(pa.Table.from_arrays(arrays, names=schema.names))


def _with_unit(schema: pa.Schema, unit: str | None) -> pa.Schema:
    """``schema`` with ``unit`` in the signal field's metadata (the value column of a scalar stream)."""
    name = "value" if "value" in schema.names else None
    if name is None:
        return schema
    i = schema.get_field_index(name)
    meta = {k: v for k, v in (schema.field(i).metadata or {}).items() if k != UNIT_KEY}
    if unit is not None:
        meta[UNIT_KEY] = unit.encode()
    return schema.set(i, schema.field(i).with_metadata(meta or None))


def _result_schema(result: pa.Schema, input_schema: pa.Schema) -> pa.Schema:
    """The input's schema when the result has the same columns and types, else the result's, plain."""
    plain_in = plain_schema(input_schema)
    fields = []
    for f in result:
        t = plain_type(f.type)
        if t == pa.large_string():
            t = pa.string()
        fields.append(pa.field(f.name, t, nullable=True))
    same = [f.name for f in fields] == plain_in.names and all(
        f.type == g.type for f, g in zip(fields, plain_in, strict=True)
    )
    return plain_in if same else pa.schema(fields)


class SQLProcessor(Processor[SQLParams]):
    """Publishes ``<id>/result``: the query's result for each input batch."""

    kind = "sql"
    accepts: ClassVar[tuple[str, ...]] = ()  # any stream

    def configure(self, input_schema: pa.Schema) -> dict[str, pa.Schema]:
        query = self.params.query
        try:
            empty = run_query(query, to_polars(input_schema.empty_table()))
        except Exception as exc:
            columns = ", ".join(input_schema.names)
            raise ProcessorConfigError(
                f"{self.where}: bad SQL query {query!r}: {_first_line(exc)} "
                f"(the input {self.input!r} is the table 'batch' with columns {columns})"
            ) from None
        self.unit = self.params.unit
        if self.unit is None:
            self.unit = unit_of(input_schema, "value")
            if "unit" in empty.columns:
                probe = run_query(query, _sample_row(input_schema, self.unit))
                if probe.height and probe["unit"][0] is not None:
                    self.unit = str(probe["unit"][0])
        self.output_schema = _with_unit(_result_schema(empty.to_arrow().schema, input_schema), self.unit)
        return {"result": self.output_schema}

    def transform(self, batch: pa.RecordBatch) -> Outputs:
        try:
            result = run_query(self.params.query, to_polars(batch))
            if "unit" in result.columns and result.height:
                if self.params.unit is not None:
                    result = result.with_columns(pl.lit(self.params.unit).alias("unit"))
                elif (said := result["unit"][0]) != self.unit:
                    self.problem(
                        f"{self.where}: the query's unit column says {said!r}, the stream is in {self.unit!r} "
                        "(set the processor's unit parameter)",
                        "unit",
                    )
            table = from_polars(result, self.output_schema)
        except Exception as exc:
            raise ProcessorError(
                f"{self.where}: query failed on a batch of {self.input!r}: {_first_line(exc)}"
            ) from None
        if table.num_rows == 0:
            return []
        return [("result", table.combine_chunks().to_batches()[0])]
