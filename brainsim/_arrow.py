"""Numpy <-> Arrow without pandas: columns built from and read through their buffers.

``pa.array``, ``pa.table``, ``Array.to_numpy``, ``pc.equal`` with a Python scalar and
``pq.read_table`` all import pandas on first use (to test for pandas types): 0.2-0.4 s of
every process that touches a table. The functions here go through ``Array.from_buffers``,
``np.frombuffer`` and ``ParquetFile.read`` instead; types they do not cover take pyarrow's
own path (correct, only slower to start).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_TO_ARROW = {
    np.dtype(np.int32): pa.int32(),
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.float32): pa.float32(),
    np.dtype(np.float64): pa.float64(),
}
_TO_NUMPY = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


# -- numpy -> Arrow -------------------------------------------------------------------------
def column(x, dtype=None) -> pa.Array:
    """A numpy array (cast to ``dtype``) as an Arrow array, without a copy where the type
    allows (other types go through ``pa.array``)."""
    x = np.ascontiguousarray(np.asarray(x, dtype).reshape(-1))
    typ = _TO_ARROW.get(x.dtype)
    if typ is None:
        return pa.array(x)
    return pa.Array.from_buffers(typ, x.size, [None, pa.py_buffer(x)])


def strings(values) -> pa.Array:
    """A list of ``str`` as an Arrow string array, from its buffers (``large_string``
    past 2 GiB of text)."""
    data = [v.encode() for v in values]
    total = sum(len(b) for b in data)
    typ, off = (pa.string(), np.int32) if total < 2**31 else (pa.large_string(), np.int64)
    offsets = np.zeros(len(data) + 1, off)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(
        typ, len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    )


def table(columns: dict) -> pa.Table:
    """A table of named Arrow arrays (``pa.Table.from_arrays``: no pandas checks)."""
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def rows_table(rows: list[dict]) -> pa.Table:
    """``pa.Table.from_pylist`` for rows of the same keys whose values are all ``int``,
    all numbers, or all ``str`` per key; other rows go through ``from_pylist``."""
    keys = list(rows[0]) if rows else []
    if not rows or any(list(r) != keys for r in rows):
        return pa.Table.from_pylist(rows)
    out = {}
    for k in keys:
        vals = [r[k] for r in rows]
        if all(isinstance(v, str) for v in vals):
            out[k] = strings(vals)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            out[k] = column(vals, np.int64)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            out[k] = column(vals, np.float64)
        else:
            return pa.Table.from_pylist(rows)
    return table(out)


# -- Arrow -> numpy -------------------------------------------------------------------------
def values(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column (array or chunked) as numpy: fixed-width numbers and booleans
    without nulls read from their buffers (a read-only view where one chunk of numbers
    allows it, as pyarrow's own ``to_numpy`` gives); anything else through
    ``to_numpy(zero_copy_only=False)``."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    dtype = _TO_NUMPY.get(col.type)
    if col.null_count or (dtype is None and not pa.types.is_boolean(col.type)):
        return np.asarray(col.to_numpy(zero_copy_only=False))
    parts = [_chunk_values(c, dtype) for c in chunks if len(c)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.zeros(0, dtype or bool)
    return np.concatenate(parts)


def _chunk_values(c: pa.Array, dtype) -> np.ndarray:
    buf = c.buffers()[1]
    if dtype is None:  # booleans: one bit each, least significant first
        first, last = c.offset // 8, (c.offset + len(c) + 7) // 8
        packed = np.frombuffer(buf, np.uint8, count=last - first, offset=first)
        bits = np.unpackbits(packed, bitorder="little")
        start = c.offset - 8 * first
        return bits[start : start + len(c)].astype(bool)
    size = np.dtype(dtype).itemsize
    out = np.frombuffer(buf, dtype, count=len(c), offset=size * c.offset)
    out.flags.writeable = False  # (a view of the Arrow buffer: writing would change the table)
    return out


def read_parquet(
    path: str | Path,
    columns: Sequence[str] | None = None,
    where: Mapping[str, int] | None = None,
) -> pa.Table:
    """A Parquet file's ``columns`` (all if ``None``), only the rows whose integer columns
    in ``where`` equal the given values (``pq.read_table`` with ``filters``, without its
    pandas import). Row groups whose statistics exclude a value are not read (result
    tables are written sorted by condition and trial, so one trial's rows are read)."""
    where = dict(where or {})
    with pq.ParquetFile(path) as pf:
        schema = pf.schema_arrow
        for name in where:
            if name not in schema.names or not pa.types.is_integer(schema.field(name).type):
                raise TypeError(f"{path}: no integer column {name!r} to select rows by")
        names = None if columns is None else list(dict.fromkeys([*columns, *where]))
        groups = [i for i in range(pf.num_row_groups) if _may_hold(pf, i, where)]
        t = pf.read_row_groups(groups, columns=names)  # (none: an empty table)
    if where:
        keep = np.ones(t.num_rows, bool)
        for name, value in where.items():
            keep &= values(t.column(name)) == value
        t = t.take(column(np.nonzero(keep)[0], np.int64))
    if columns is not None:
        t = t.select(list(columns))
    return t


def _may_hold(pf: pq.ParquetFile, group: int, where: Mapping[str, int]) -> bool:
    """Whether row group ``group`` can hold rows with these values (its statistics)."""
    meta = pf.metadata.row_group(group)
    for j in range(meta.num_columns):
        col = meta.column(j)
        value = where.get(col.path_in_schema)
        stats = col.statistics
        if value is None or stats is None or not stats.has_min_max:
            continue
        if not stats.min <= value <= stats.max:
            return False
    return True
