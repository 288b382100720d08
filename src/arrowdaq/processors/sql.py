"""A processor defined by a Polars SQL query over each batch.

For a transformation without writing a class::

    SELECT timestamp_ns, channel, value * 1000 AS value, unit FROM batch WHERE value > 0

The input batch is the table ``batch``. The query runs on each batch alone (no
state across batches: an aggregate is per batch). It is checked at start by
running it on an empty table of the input's schema, so a syntax error, an
unknown column or a type error stops the processor with the query problem
before any data flows.

The output ``<id>/result`` keeps the input's schema (kind, units) when the
query returns the input's columns with their types; otherwise it is a stream
of the query's own columns (a producer-declared schema, no kind).
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
import pyarrow as pa
from pydantic import Field, field_validator

from ..data import from_polars, plain_schema, to_polars
from ..data.schemas import plain_type
from ..errors import ProcessorConfigError, ProcessorError
from .base import Outputs, Processor, ProcessorParams


class SQLParams(ProcessorParams):
    query: str = Field(description="a Polars SQL query over the table 'batch'")

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


def _result_schema(result: pa.Schema, input_schema: pa.Schema) -> pa.Schema:
    """The input's schema when the result has the same columns and types, else the result's, plain."""
    plain_in = plain_schema(input_schema)
    fields = []
    for f in result:
        t = plain_type(f.type)
        if t == pa.large_string():
            t = pa.string()
        fields.append(pa.field(f.name, t, nullable=True))
    same = [f.name for f in fields] == plain_in.names and all(f.type == g.type for f, g in zip(fields, plain_in))
    return plain_in if same else pa.schema(fields)


class SQLProcessor(Processor):
    """Publishes ``<id>/result``: the query's result for each input batch."""

    kind = "sql"
    Params: ClassVar = SQLParams
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
        self.output_schema = _result_schema(empty.to_arrow().schema, input_schema)
        return {"result": self.output_schema}

    def transform(self, batch: pa.RecordBatch) -> Outputs:
        try:
            result = run_query(self.params.query, to_polars(batch))
            table = from_polars(result, self.output_schema)
        except Exception as exc:
            raise ProcessorError(
                f"{self.where}: query failed on a batch of {self.input!r}: {_first_line(exc)}"
            ) from None
        if table.num_rows == 0:
            return []
        return [("result", table.combine_chunks().to_batches()[0])]
