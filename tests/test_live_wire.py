"""What a run of batches looks like on the wire (WireFormat.table): plain strings, a message per batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from arrowdaq.data import scalar_batch
from arrowdaq.live.wire import WireFormat


def test_a_run_keeps_each_batch_and_its_strings() -> None:
    batches = [scalar_batch(np.full(3, float(k)), channel=f"ch{k % 2}", unit="W") for k in range(4)]
    mixed = pa.RecordBatch.from_arrays(  # one channel value per row: decoded, not a constant column
        [
            pa.array([1, 2], pa.uint64()),
            pa.array(["a", "b"]).dictionary_encode(),
            pa.array([5.0, 6.0]),
            pa.array(["W", "W"]).dictionary_encode(),
        ],
        schema=batches[0].schema,
    )
    wire = WireFormat(batches[0].schema)
    table = wire.table([*batches, mixed])
    assert table.schema.equals(wire.schema)
    assert not any(pa.types.is_dictionary(f.type) for f in table.schema)
    sent = table.to_batches()  # what Flight's RecordBatchStream sends: one message per batch
    assert [b.num_rows for b in sent] == [3, 3, 3, 3, 2]
    assert [b.column("channel").to_pylist() for b in sent] == [
        ["ch0"] * 3,
        ["ch1"] * 3,
        ["ch0"] * 3,
        ["ch1"] * 3,
        ["a", "b"],
    ]
    assert sent[4].column("value").to_pylist() == [5.0, 6.0]


def test_a_run_of_batches_whose_schemas_differ_in_nullability_is_converted_each() -> None:
    first = scalar_batch(np.zeros(2), channel="x", unit="V")
    loose = pa.RecordBatch.from_arrays(  # hand-built: plain strings, nullable fields
        [pa.array([1, 2], pa.uint64()), pa.array(["x", "x"]), pa.array([1.0, 2.0]), pa.array(["V", "V"])],
        names=first.schema.names,
    )
    wire = WireFormat(first.schema)
    table = wire.table([first, loose])
    assert table.schema.equals(wire.schema)
    assert table.column("channel").to_pylist() == ["x"] * 4 and table.column("value").to_pylist() == [0, 0, 1, 2]
