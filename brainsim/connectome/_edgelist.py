"""Loader ``edgelist``: any table of connections, one row per (pre, post) pair.

``source`` is a CSV, CSV.gz or Parquet file with a presynaptic id column, a postsynaptic
id column (int64 neuron ids) and a synapse count column; ``pre``, ``post`` and ``count``
name them (defaults ``pre``, ``post``, ``count``; e.g. ``count="weight"``).

Signs come from exactly one of (``provenance.sign_rule`` in brackets):

``signed_counts=True`` ("given")
    the count column is already signed: negative counts are inhibitory synapses.
``sign=COLUMN`` ("given" or "per_connection")
    a column holding +1/-1 per row ("given"), or a transmitter name per row
    ("per_connection": GABA and glutamate inhibitory, anything else excitatory, as in Shiu
    et al. 2024; an empty name counts as excitatory, ``rows_without_transmitter``).
``transmitter_table=PATH`` ("per_neuron")
    a CSV/Parquet table with an id column (``transmitter_key``, default ``id``) and a
    ``transmitter`` (or ``nt_type``, ``predicted_nt``) column; every connection of a neuron
    takes the sign of its transmitter. Neurons with outputs but no row are excitatory and
    counted (``neurons_without_transmitter``), or raise with
    ``missing_transmitter="error"``; rows naming no neuron are counted
    (``transmitter_rows_unused``).

Naming none of them raises, since an unsigned count cannot drive the model.

Neurons: without ``neurons=PATH`` the neuron table is the sorted union of the ids in the
file. With it (a table with an ``id`` column and optional ``cell_type``, ``class``,
``super_class``, ``side``), the neuron table is that table sorted by id, and an edge id it
lacks raises, naming the row, unless ``allow_unknown_ids=True`` (``unknown_ids_added``).
Columns: ``id``, the annotations given, ``transmitter`` (with a transmitter table) and
``sign`` (int8; the majority sign of the neuron's output synapses, 0 without outputs).

Gap junctions (electrical synapses): ``gap_path=PATH``, a CSV/Parquet table with columns
``a``, ``b`` (neuron ids) and ``count`` (junctions, > 0), one row per unordered pair: the
connectome's ``gap_junctions`` table lists each pair in both directions. The same bad-input
rules as for chemical rows apply (named file and row); gap-junction ids join the neuron set
(or must be in ``neurons``); counted rules: ``zero_count_gap_rows_dropped``,
``self_gap_junctions_dropped`` (a neuron coupled to itself carries no current),
``gap_pair_rows_merged`` (a pair given twice, in either order, is summed; an error with
``duplicates="error"``).

Other counted rules: ``zero_count_rows_dropped`` (rows with count 0),
``pair_rows_merged`` (rows repeating a pair are summed; ``duplicates="error"`` raises
instead), ``self_connections_kept``, ``neurons_with_mixed_output_signs`` (neurons whose
outputs carry both signs; their ``sign`` is the majority), ``zero_sum_pairs_dropped``
(repeated rows of a pair whose signed counts cancel). A negative count (unless
``signed_counts``), a fractional, empty or NaN count, a non-integer id or a missing column
raises a :class:`ConnectomeError` naming the file and the 1-based data row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._tables import (
    align,
    check_duplicates_option,
    check_no_duplicate_rows,
    check_unique_ids,
    finish,
    int_column,
    neuron_table,
    neuron_transmitters,
    output_signs,
    read_table,
    require_file,
    signs_of,
    text_column,
    union_ids,
    where,
)

ANNOTATION_COLUMNS = ("cell_type", "class", "super_class", "side")


def load_edgelist(
    source: str | Path,
    *,
    pre: str = "pre",
    post: str = "post",
    count: str = "count",
    signed_counts: bool = False,
    sign: str | None = None,
    transmitter_table: str | Path | None = None,
    transmitter_key: str = "id",
    neurons: str | Path | None = None,
    missing_transmitter: str = "excitatory",
    allow_unknown_ids: bool = False,
    duplicates: str = "sum",
    gap_path: str | Path | None = None,
) -> Connectome:
    """Load a generic edge list; see the module docstring for the sign options.

    Args:
        source: CSV, CSV.gz or Parquet file, one row per connection.
        pre, post, count: names of the presynaptic id, postsynaptic id and synapse count
            columns.
        signed_counts: the count column is signed (sign rule "given").
        sign: name of a column with +1/-1 ("given") or transmitter names ("per_connection").
        transmitter_table: table of each neuron's transmitter ("per_neuron").
        transmitter_key: id column of the transmitter table.
        neurons: optional neuron table (``id`` plus annotations) defining the neurons.
        missing_transmitter: ``"excitatory"`` (count) or ``"error"``, for neurons the
            transmitter table lacks.
        allow_unknown_ids: with ``neurons``, add edge ids it lacks instead of raising.
        duplicates: ``"sum"`` repeated (pre, post) rows, or ``"error"``.
        gap_path: optional table of gap junctions (``a``, ``b``, ``count``; undirected).
    """
    chosen = [signed_counts, sign is not None, transmitter_table is not None]
    if sum(chosen) != 1:
        raise ConnectomeError(
            "format 'edgelist' needs exactly one source of signs: signed_counts=True (the "
            "count column is signed), sign=COLUMN (+1/-1 or transmitter names per row), or "
            f"transmitter_table=PATH (a transmitter per neuron); got {sum(chosen)}"
        )
    if pre == post:
        raise ConnectomeError(f"pre and post name the same column {pre!r}")
    check_duplicates_option(duplicates)
    path = require_file(Path(source), "edge list")
    rules: dict[str, int] = {}
    table = read_table(path, [pre, post, count, *([sign] if sign else [])])
    pre_id = int_column(table, pre, path, kind="id")
    post_id = int_column(table, post, path, kind="id")
    counts = int_column(table, count, path, kind="count", signed=signed_counts)
    if duplicates == "error":
        check_no_duplicate_rows([pre_id, post_id], path, "pair", [pre, post])

    files = [path]
    columns: dict = {}
    listed = None
    neurons_path = None
    if neurons is not None:
        neurons_path = require_file(Path(neurons), "neuron table")
        files.append(neurons_path)
        listed, annotations = _read_neurons(neurons_path)
    gap = None
    if gap_path is not None:
        gap_file = require_file(Path(gap_path), "gap-junction table")
        files.append(gap_file)
        gap_table = read_table(gap_file, ["a", "b", "count"])
        gap_a = int_column(gap_table, "a", gap_file, kind="id")
        gap_b = int_column(gap_table, "b", gap_file, kind="id")
        gap_count = int_column(gap_table, "count", gap_file, kind="count")
    ids = union_ids(
        listed,
        pre_id,
        post_id,
        columns=(pre, post),
        conn_path=path,
        neurons_path=neurons_path,
        allow_unknown=allow_unknown_ids,
        rules=rules,
    )
    if gap_path is not None:
        if listed is None:  # the neurons are those named by either table
            ids = np.union1d(ids, np.concatenate([gap_a, gap_b]))
        else:
            ids = union_ids(
                ids,
                gap_a,
                gap_b,
                columns=("a", "b"),
                conn_path=gap_file,
                neurons_path=neurons_path,
                allow_unknown=allow_unknown_ids,
                rules=rules,
            )
        gap = _gap_pairs(gap_a, gap_b, gap_count, gap_file, duplicates, rules)
    if listed is not None:
        columns = {k: pa.array(align(v, listed, ids), pa.string()) for k, v in annotations.items()}

    row_sign, sign_rule = np.sign(counts), "given"
    if sign is not None:
        row_sign, sign_rule = _sign_column(table, sign, path, rules)
    keep = counts != 0
    rules["zero_count_rows_dropped"] = int((~keep).sum())
    pre_idx = np.searchsorted(ids, pre_id[keep])
    post_idx = np.searchsorted(ids, post_id[keep])
    magnitude = np.abs(counts[keep])
    row_sign = row_sign[keep]

    if transmitter_table is not None:
        sign_rule = "per_neuron"
        nt_path = require_file(Path(transmitter_table), "transmitter table")
        files.append(nt_path)
        has_output = np.bincount(pre_idx, minlength=ids.size) > 0
        transmitter, neuron_sign = neuron_transmitters(
            nt_path,
            ids.tolist(),
            (transmitter_key,),
            key_kind="id",
            has_output=has_output,
            ids=ids,
            missing=missing_transmitter,
            rules=rules,
        )
        row_sign = neuron_sign[pre_idx]
        columns["transmitter"] = pa.array(transmitter, pa.string())
    signed = row_sign.astype(np.int64) * magnitude
    out_sign, rules["neurons_with_mixed_output_signs"] = output_signs(ids.size, pre_idx, signed)
    columns["sign"] = pa.array(out_sign, pa.int8())

    options = {
        "pre": pre,
        "post": post,
        "count": count,
        "signed_counts": signed_counts,
        "sign": sign,
        "transmitter_table": None if transmitter_table is None else Path(transmitter_table).name,
        "transmitter_key": transmitter_key,
        "neurons": None if neurons_path is None else neurons_path.name,
        "missing_transmitter": missing_transmitter,
        "allow_unknown_ids": allow_unknown_ids,
        "duplicates": duplicates,
        "gap_path": None if gap_path is None else Path(gap_path).name,
    }
    return finish(
        fmt="edgelist",
        neurons=neuron_table(ids, columns),
        pre=pre_idx,
        post=post_idx,
        counts=signed,
        files=files,
        options=options,
        sign_rule=sign_rule,
        rule_counts=rules,
        gap_junctions=None if gap is None else _gap_table(ids, *gap),
    )


def _gap_pairs(a, b, count, path: Path, duplicates: str, rules: dict[str, int]):
    """(a ids, b ids, count) of a gap-junction table, one row per unordered pair, a < b."""
    zero = count == 0
    rules["zero_count_gap_rows_dropped"] = int(zero.sum())
    self_ = (a == b) & ~zero
    rules["self_gap_junctions_dropped"] = int(self_.sum())
    keep = ~zero & ~self_
    lo, hi, count = np.minimum(a, b)[keep], np.maximum(a, b)[keep], count[keep]
    if duplicates == "error":
        check_no_duplicate_rows([lo, hi], path, "gap-junction pair", ["a", "b"])
    pairs, inverse = np.unique(np.stack([lo, hi], axis=1), axis=0, return_inverse=True)
    rules["gap_pair_rows_merged"] = int(lo.size - pairs.shape[0])
    summed = np.bincount(inverse.reshape(-1), weights=count, minlength=pairs.shape[0])
    return pairs[:, 0], pairs[:, 1], summed.astype(np.int64)


def _gap_table(ids: np.ndarray, a_id, b_id, count) -> pa.Table:
    """Both directions of each pair, as int32 neuron indices, sorted by (pre, post)."""
    a, b = np.searchsorted(ids, a_id), np.searchsorted(ids, b_id)
    pre, post = np.concatenate([a, b]), np.concatenate([b, a])
    cnt = np.concatenate([count, count])
    order = np.lexsort((post, pre))
    if cnt.size and cnt.max() > np.iinfo(np.int32).max:
        raise ConnectomeError("a gap-junction count exceeds int32")
    return pa.table(
        {
            "pre": pa.array(pre[order], pa.int32()),
            "post": pa.array(post[order], pa.int32()),
            "count": pa.array(cnt[order], pa.int32()),
        }
    )


def _sign_column(
    table: pa.Table, column: str, path: Path, rules: dict[str, int]
) -> tuple[np.ndarray, str]:
    """Per-row signs from a +1/-1 column ("given") or a transmitter column ("per_connection")."""
    kind = table.schema.field(column).type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        names = text_column(table, column)
        rules["rows_without_transmitter"] = sum(1 for t in names if t is None)
        return signs_of(names).astype(np.int64), "per_connection"
    values = int_column(table, column, path, kind="count", signed=True)
    bad = (values != 1) & (values != -1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ConnectomeError(
            f"{where(path, row)}: column {column!r} is {values[row]}; a sign column must hold "
            f"+1 or -1 (or transmitter names)"
        )
    return values, "given"


def _read_neurons(path: Path) -> tuple[np.ndarray, dict[str, list]]:
    """Ids of a neuron table and its annotation columns (per row, in file order)."""
    table = read_table(path, ["id"], optional=ANNOTATION_COLUMNS, strings=ANNOTATION_COLUMNS)
    ids = int_column(table, "id", path, kind="id")
    check_unique_ids(ids, path, "id")
    annotations = {c: text_column(table, c) for c in ANNOTATION_COLUMNS if c in table.column_names}
    return ids, annotations
