"""Arrow <-> Polars, the analysis layer.

Numeric columns are shared, not copied. Polars has no tensor type, so image
pixels travel as a Polars Array column of the same shape, and come back as the
fixed-shape tensor of the schema they are converted to.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from .schemas import plain_schema


def _tensor_to_storage(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if isinstance(field.type, pa.FixedShapeTensorType):
            shape = field.type.shape
            storage = table.column(i)
            chunks = [c.storage for c in storage.chunks]
            arr_type = field.type.value_type
            for dim in reversed(shape):
                arr_type = pa.list_(arr_type, dim)
            nested = [_nest(c, shape) for c in chunks]
            table = table.set_column(i, field.with_type(arr_type), pa.chunked_array(nested, arr_type))
    return table


def _nest(flat_rows: pa.FixedSizeListArray, shape: tuple[int, ...]) -> pa.Array:
    values = flat_rows.flatten()
    arr: pa.Array = values
    for dim in reversed(shape):
        arr = pa.FixedSizeListArray.from_arrays(arr, dim)
    return arr


def to_polars(data: pa.RecordBatch | pa.Table) -> pl.DataFrame:
    """A Polars DataFrame of a batch or table (string dictionaries become Categorical)."""
    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    frame = pl.from_arrow(_tensor_to_storage(table))
    assert isinstance(frame, pl.DataFrame)  # a table gives a DataFrame (a Series comes from an array)
    return frame


def from_polars(df: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """A Polars DataFrame back as an Arrow table of ``schema`` (canonical, plain strings)."""
    target = plain_schema(schema)
    table = df.to_arrow()
    columns = []
    for field in target:
        col = table.column(field.name)
        if isinstance(field.type, pa.FixedShapeTensorType):
            flat = col.combine_chunks()
            while pa.types.is_nested(flat.type):
                flat = flat.flatten()
            size = int(np.prod(field.type.shape))
            storage = pa.FixedSizeListArray.from_arrays(flat.cast(field.type.value_type), size)
            columns.append(pa.ExtensionArray.from_storage(field.type, storage))
        else:
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            columns.append(col.cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)
