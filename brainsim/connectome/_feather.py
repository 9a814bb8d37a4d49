"""Reading Feather (Arrow IPC) files: whole small tables, and large ones in batches.

The connection tables of the newer releases are Feather v2 files, i.e. Arrow IPC files of
record batches (pandas' ``to_feather`` and pyarrow's ``write_feather`` write batches of
64k rows by default). The MaleCNS v1.0 weights file has 151,856,684 rows: read whole it
needs about 2.4 GB for its three int64 columns alone, before any processing. The loaders
therefore stream it: the file is memory-mapped, only the named columns of each batch are
decompressed (``IpcReadOptions(included_fields=...)``), and consecutive batches are joined
into chunks of about a million rows so that the per-chunk numpy work dominates the Python
overhead. Only what a loader keeps of each chunk stays in memory.

Ids stored as text (BANC's ``pre``, ``post``, ``banc_888_id``) are parsed by one rule,
:func:`id_column`: an id is 1 to 19 decimal digits (``0-9``; no sign, space, decimal point
or exponent) and names an integer below 2**63; it becomes that int64. Anything else raises
a :class:`ConnectomeError` naming file, row, column and the text.

pyarrow and numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as pf

from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._tables import int_column, require_file, where

CHUNK_ROWS = 1 << 20
_ID_TEXT = r"^[0-9]{1,19}$"
_INT64_MAX = (1 << 63) - 1


def _reader(path: Path, fields: Sequence[int] | None = None) -> pa.ipc.RecordBatchFileReader:
    require_file(path, "Feather file")
    options = pa.ipc.IpcReadOptions(included_fields=list(fields)) if fields is not None else None
    try:
        return pa.ipc.open_file(pa.memory_map(str(path), "r"), options=options)
    except (pa.ArrowException, OSError) as e:
        raise ConnectomeError(
            f"{path}: cannot read as a Feather v2 (Arrow IPC) file: {e}. Feather v1 files are "
            f"not supported; re-save it with pyarrow.feather.write_feather"
        ) from e


def feather_columns(path: Path) -> list[str]:
    """Column names of a Feather v2 file, from its schema."""
    return list(_reader(path).schema.names)


def feather_rows(path: Path) -> int:
    """Number of rows of a Feather v2 file, from its batch metadata (no data is read)."""
    reader = _reader(path, fields=[])
    return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def read_feather(path: Path, columns: Sequence[str]) -> pa.Table:
    """The named columns of a whole Feather file (for neuron tables, not connection tables)."""
    try:
        return pf.read_table(path, columns=list(columns), memory_map=True)
    except (pa.ArrowException, OSError) as e:
        raise ConnectomeError(f"{path}: cannot read: {e}") from e


def require_columns(path: Path, present: Sequence[str], required: Sequence[str], hint: str):
    missing = [c for c in required if c not in present]
    if missing:
        raise ConnectomeError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; the file has "
            f"{', '.join(repr(c) for c in present) or 'no columns'}. {hint}".rstrip()
        )


def iter_chunks(
    path: Path,
    required: Sequence[str],
    *,
    optional: Sequence[str] = (),
    hint: str = "",
    chunk_rows: int | None = None,
) -> Iterator[tuple[int, pa.Table]]:
    """``(first_row, table)`` for consecutive chunks of a Feather file, in file order.

    Each table holds the ``required`` and present ``optional`` columns of about
    ``chunk_rows`` rows (whole record batches; default :data:`CHUNK_ROWS`); ``first_row`` is
    the 0-based file row of its first row, for error messages. A missing required column
    raises before any row is read.
    """
    chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
    names = feather_columns(path)
    require_columns(path, names, required, hint)
    wanted = list(dict.fromkeys([*required, *(c for c in optional if c in names)]))
    reader = _reader(path, fields=[names.index(c) for c in wanted])
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    first = 0
    for i in range(reader.num_record_batches):
        try:
            batch = reader.get_batch(i)
        except (pa.ArrowException, OSError) as e:
            raise ConnectomeError(f"{path}: cannot read record batch {i}: {e}") from e
        pending.append(batch.select(wanted))
        pending_rows += batch.num_rows
        if pending_rows >= chunk_rows:
            yield first, pa.Table.from_batches(pending)
            first += pending_rows
            pending, pending_rows = [], 0
    if pending or first == 0:
        schema = reader.schema
        empty = pa.schema([schema.field(c) for c in wanted])
        yield first, pa.Table.from_batches(pending, schema=empty)


def id_column(table: pa.Table, column: str, path: Path, *, first_row: int = 0) -> np.ndarray:
    """int64 neuron ids of a column stored as integers or as decimal text (see module doc)."""
    arr = table.column(column).combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return int_column(table, column, path, kind="id", first_row=first_row)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    bad = pc.invert(pc.fill_null(pc.match_substring_regex(arr, _ID_TEXT), False))
    bad_np = bad.to_numpy(zero_copy_only=False)
    if bad_np.any():
        row = int(np.flatnonzero(bad_np)[0])
        value = arr[row].as_py()
        shown = "empty" if value is None else repr(value)
        raise ConnectomeError(
            f"{where(path, first_row + row)}: column {column!r} is {shown}, not a neuron id; ids "
            f"stored as text must be decimal digits only (e.g. '720575941491012809'); fix or "
            f"remove the row"
        )
    try:
        return pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        too_big = [i for i, s in enumerate(arr.to_pylist()) if int(s) > _INT64_MAX]
        row = too_big[0] if too_big else 0
        raise ConnectomeError(
            f"{where(path, first_row + row)}: column {column!r} is {arr[row].as_py()!r}, which "
            f"exceeds the largest int64 id (2**63 - 1); fix or remove the row"
        ) from None
