"""The data model: canonical Arrow schemas, builders from NumPy, validation, Polars."""

from .builders import constant_string, frames_of, image_batch, now_ns, scalar_batch, traces_of, vector_batch
from .polars import from_polars, to_polars
from .schemas import (
    EXPLICIT,
    IMAGE,
    SCALAR,
    UNIFORM,
    VECTOR,
    encoded_schema,
    image_schema,
    kind_of,
    plain_schema,
    scalar_schema,
    unit_of,
    vector_schema,
)
from .validate import check_schema, decode, validate_batch

__all__ = [
    "EXPLICIT",
    "IMAGE",
    "SCALAR",
    "UNIFORM",
    "VECTOR",
    "check_schema",
    "constant_string",
    "decode",
    "frames_of",
    "from_polars",
    "image_batch",
    "image_schema",
    "kind_of",
    "now_ns",
    "encoded_schema",
    "plain_schema",
    "scalar_batch",
    "scalar_schema",
    "to_polars",
    "traces_of",
    "unit_of",
    "validate_batch",
    "vector_batch",
    "vector_schema",
]
