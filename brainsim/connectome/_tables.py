"""Helpers shared by the file loaders: reading tables, validating columns, finishing a Connectome.

Every error raised here is a :class:`ConnectomeError` that names the file, the column and,
for bad values, the row. Rows are numbered like a spreadsheet's data rows: the first row
after the header is row 1 (in a CSV file it sits on line 2). numpy and pyarrow only.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from brainsim.connectome._checksum import sources_checksum
from brainsim.connectome._connectome import Connectome, Provenance, from_edges, transmitter_sign
from brainsim.connectome._errors import ConnectomeError

DUPLICATE_RULES = ("sum", "error")
MISSING_TRANSMITTER_RULES = ("excitatory", "error")

# Column names under which transmitter tables may hold the transmitter of a neuron or type.
TRANSMITTER_COLUMNS = ("transmitter", "nt_type", "predicted_nt")


# ------------------------------------------------------------------------------ files
def is_csv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".csv", ".csv.gz"))


def is_tsv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tsv", ".tsv.gz"))


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def is_feather(path: Path) -> bool:
    """Feather v2 (Arrow IPC file) by name: ``.feather``, ``.arrow`` or ``.ipc``."""
    return path.suffix.lower() in (".feather", ".arrow", ".ipc")


def where(path: Path, row: int) -> str:
    """'file, row N (line N+1)' for 0-based data row ``row``; lines only make sense in text."""
    line = f" (line {row + 2})" if is_csv(path) or is_tsv(path) else ""
    return f"{path}, row {row + 1}{line}"


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """``path`` if it is a file, else an error that says what the file was for."""
    if not path.is_file():
        raise ConnectomeError(f"{path}: {what} not found. {hint}".rstrip())
    return path


def find_one(folder: Path, patterns: Sequence[str], what: str, *, required: bool) -> Path | None:
    """The single file in ``folder`` matching one of the glob ``patterns``.

    Several matches are ambiguous and raise (the caller's error tells the user to name the
    file); no match returns None, or raises when ``required``.
    """
    found = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ConnectomeError(
            f"{folder}: several files could be the {what} ({names}); keep one in the folder "
            f"or pass the path of the one to use"
        )
    if not found:
        if required:
            raise ConnectomeError(f"{folder}: no {what} found (looked for {', '.join(patterns)})")
        return None
    return found[0]


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    delimiter = "\t" if is_tsv(path) else ","
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f, delimiter=delimiter), [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConnectomeError(f"{path}: cannot read the CSV header: {e}") from e


def columns_of(path: Path) -> list[str]:
    """Column names of a CSV, TSV (optionally gzipped), Parquet or Feather file, without
    reading its rows."""
    if is_parquet(path):
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as e:
            raise ConnectomeError(f"{path}: cannot read as Parquet: {e}") from e
    if is_feather(path):
        from brainsim.connectome._feather import feather_columns

        return feather_columns(path)
    if is_csv(path) or is_tsv(path):
        return _csv_header(path)
    raise ConnectomeError(
        f"{path}: unknown file type; use .csv, .tsv (optionally .gz), .parquet or .feather "
        f"(the loaders pick the reader from the file name)"
    )


def read_table(
    path: Path,
    required: Sequence[str],
    *,
    optional: Sequence[str] = (),
    strings: Iterable[str] = (),
    hint: str = "",
) -> pa.Table:
    """Read the ``required`` and present ``optional`` columns of a CSV, TSV, Parquet or
    Feather file (the whole file: for tables of neurons; large connection tables are read in
    batches by :mod:`brainsim.connectome._feather`).

    Columns named in ``strings`` are read as text (so an empty transmitter stays an empty
    string and never turns the column into numbers); all others keep the types that pyarrow
    infers and are checked by :func:`int_column`. A missing file or column raises an error
    naming the file, the missing columns and the columns the file has.
    """
    require_file(path, "file", hint)
    present = columns_of(path)
    missing = [c for c in required if c not in present]
    if missing:
        raise ConnectomeError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; the file has "
            f"{', '.join(repr(c) for c in present) or 'no columns'}. {hint}".rstrip()
        )
    wanted = list(dict.fromkeys([*required, *(c for c in optional if c in present)]))
    text = [c for c in strings if c in wanted]
    try:
        if is_parquet(path):
            table = pq.read_table(path, columns=wanted)
        elif is_feather(path):
            from brainsim.connectome._feather import read_feather

            table = read_feather(path, wanted)
        else:
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter="\t" if is_tsv(path) else ","),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={c: pa.string() for c in text}
                ),
            )
    except (pa.ArrowException, OSError) as e:
        raise ConnectomeError(f"{path}: cannot read: {e}") from e
    for c in text:
        if not pa.types.is_string(table.schema.field(c).type):
            table = table.set_column(
                table.schema.get_field_index(c), c, table.column(c).cast(pa.string())
            )
    return table


# ------------------------------------------------------------------------------ columns
def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def int_column(
    table: pa.Table,
    column: str,
    path: Path,
    *,
    kind: str = "count",
    signed: bool = False,
    first_row: int = 0,
) -> np.ndarray:
    """int64 values of an integer column; the first bad value raises, naming its row.

    ``first_row`` is the file row of the table's first row, for tables that are one batch of
    a larger file: messages then name rows of the file.

    ``kind="id"`` is for neuron ids: they must be stored as integers, because 18-digit
    FlyWire ids do not survive a trip through floating point. ``kind="count"`` is for synapse
    counts and ``kind="index"`` for row indices: whole numbers, stored as integers or as
    floats with no fraction, and not negative unless ``signed``. An empty cell or NaN is
    always an error.
    """
    arr = table.column(column).combine_chunks()

    def here(row: int) -> str:
        return where(path, first_row + row)

    what = {"id": "neuron id", "index": "row index", "count": "synapse count"}[kind]
    todo = (
        "fix or remove the row"
        if kind == "id"
        else f"{what}s must be whole numbers; fix or remove the row"
    )
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.null_count:
        row = _first(arr.is_null().to_numpy(zero_copy_only=False))
        raise ConnectomeError(
            f"{here(row)}: column {column!r} is empty or NaN where a {what} belongs; {todo}"
        )
    t = arr.type
    if pa.types.is_integer(t):
        values = arr.to_numpy()
        if pa.types.is_unsigned_integer(t) and values.max() > np.iinfo(np.int64).max:
            row = _first(values > np.iinfo(np.int64).max)
            raise ConnectomeError(f"{here(row)}: column {column!r} exceeds int64")
        values = values.astype(np.int64)
    elif pa.types.is_floating(t):
        f = arr.to_numpy()
        bad = ~np.isfinite(f)
        if bad.any():
            row = _first(bad)
            raise ConnectomeError(
                f"{here(row)}: column {column!r} is {f[row]} where a {what} belongs; {todo}"
            )
        if kind == "id":
            raise ConnectomeError(
                f"{path}: column {column!r} holds floating-point numbers (row 1: {float(f[0])}); "
                f"neuron ids must be written as integers, because floating point loses the "
                f"last digits of 18-digit ids. Re-export the file with integer ids"
            )
        frac = f != np.round(f)
        if frac.any():
            row = _first(frac)
            raise ConnectomeError(
                f"{here(row)}: column {column!r} is {float(f[row])}, not a whole number; {todo}"
            )
        values = f.astype(np.int64)
    else:
        values = _parse_ints(arr.to_pylist(), column, path, what, todo, first_row)
    if not signed and kind != "id" and values.size and values.min() < 0:
        row = _first(values < 0)
        raise ConnectomeError(
            f"{here(row)}: column {column!r} is negative ({values[row]}); {what}s "
            f"cannot be negative here, fix or remove the row"
        )
    return values


def _parse_ints(
    items: list, column: str, path: Path, what: str, todo: str, first_row: int = 0
) -> np.ndarray:
    """Parse text cells as integers; only reached for columns pyarrow could not type."""
    out = np.empty(len(items), dtype=np.int64)
    for row, item in enumerate(items):
        text = "" if item is None else str(item).strip()
        try:
            out[row] = int(text)
            continue
        except ValueError:
            pass
        try:
            f = float(text)
        except ValueError:
            f = None
        if f is None or not np.isfinite(f) or f != round(f):
            raise ConnectomeError(
                f"{where(path, first_row + row)}: column {column!r} is {item!r}, not a {what} "
                f"(a whole number); {todo}"
            )
        out[row] = int(f)
    return out


def text_column(table: pa.Table, column: str) -> list[str | None]:
    """Python strings of a text column, stripped, with empty cells as None."""
    out = []
    for item in table.column(column).to_pylist():
        s = None if item is None else str(item).strip()
        out.append(s or None)
    return out


def label_codes(table: pa.Table, column: str) -> tuple[np.ndarray, list[str | None]]:
    """Dictionary-encode a text column: int32 codes into a sorted list of labels.

    Empty cells and nulls share one label, None, which sorts first. Sorting the labels makes
    codes independent of row order, so ties broken by "lowest code" mean "alphabetically
    first".
    """
    enc = table.column(column).combine_chunks().dictionary_encode()
    raw = [None if v is None else (str(v).strip() or None) for v in enc.dictionary.to_pylist()]
    null = enc.indices.is_null().to_numpy(zero_copy_only=False)
    present = set(raw) | ({None} if null.any() else set())
    labels = sorted(present, key=lambda s: (s is not None, s or ""))
    lookup = {s: i for i, s in enumerate(labels)}
    remap = np.array([lookup[s] for s in raw], dtype=np.int32)
    if remap.size == 0:
        return np.full(len(null), lookup.get(None, 0), dtype=np.int32), labels
    idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    codes = np.where(null, lookup.get(None, 0), remap[idx])
    return codes.astype(np.int32), labels


# ------------------------------------------------------------------------------ ids
def positions(table_ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each ``query`` id in ``table_ids`` (any order, unique), -1 where absent."""
    query = np.asarray(query, dtype=np.int64)
    if len(table_ids) == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    order = np.argsort(table_ids, kind="stable")
    s = table_ids[order]
    pos = np.minimum(np.searchsorted(s, query), len(s) - 1)
    found = s[pos] == query
    return np.where(found, order[pos], -1).astype(np.int64)


def check_unique_ids(ids: np.ndarray, path: Path, column: str) -> None:
    """A neuron table lists each id once; a repeat raises naming the id and both rows."""
    if ids.size < 2:
        return
    order = np.argsort(ids, kind="stable")
    same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if same.size:
        a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
        raise ConnectomeError(
            f"{path}: id {ids[a]} appears twice in column {column!r} (rows {a + 1} and "
            f"{b + 1}); each neuron must be listed once, remove one of the rows"
        )


def _repeats(keys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by ``keys`` and, per neighbouring pair in that order, whether all keys agree."""
    order = np.lexsort(tuple(reversed(keys)))
    same = np.ones(max(order.size - 1, 0), dtype=bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    return order, same


def first_duplicate_rows(keys: Sequence[np.ndarray]) -> tuple[int, int] | None:
    """0-based rows (a < b) of the first two rows whose ``keys`` all agree, or None."""
    order, same = _repeats(keys)
    if not same.any():
        return None
    i = _first(same)
    a, b = sorted((int(order[i]), int(order[i + 1])))
    return a, b


def count_duplicate_rows(keys: Sequence[np.ndarray]) -> int:
    """Rows that repeat the ``keys`` of an earlier row."""
    return int(_repeats(keys)[1].sum())


def check_no_duplicate_rows(
    keys: Sequence[np.ndarray],
    path: Path,
    describe: str,
    names: Sequence[str],
    shown: Sequence[Sequence[Any]] | None = None,
) -> None:
    """Raise at the first two rows whose ``keys`` all agree (the ``duplicates='error'`` rule).

    ``shown`` optionally gives, per key, the values to print instead of the keys (e.g. the
    neuropil names behind integer codes).
    """
    hit = first_duplicate_rows(keys)
    if hit is None:
        return
    a, b = hit
    shown = keys if shown is None else shown
    value = ", ".join(f"{n}={v[a]}" for n, v in zip(names, shown, strict=True))
    raise ConnectomeError(
        f"{path}: rows {a + 1} and {b + 1} name the same {describe} ({value}); remove the "
        f"duplicate, or load with duplicates='sum' to add their counts"
    )


def check_duplicates_option(duplicates: str) -> None:
    if duplicates not in DUPLICATE_RULES:
        raise ConnectomeError(
            f"duplicates={duplicates!r}; use 'sum' (add the counts of repeated pairs) or 'error'"
        )


# ------------------------------------------------------------------------------ signs
def output_signs(n: int, pre: np.ndarray, signed_counts: np.ndarray) -> tuple[np.ndarray, int]:
    """int8 sign of each neuron's outputs, and how many neurons have outputs of both signs.

    The sign is that of the majority of the neuron's output synapses (+1 on a tie, in line
    with "inhibitory only if most outputs are inhibitory") and 0 for a neuron with no output
    synapses.
    """
    mag = np.abs(signed_counts).astype(np.float64)
    exc = np.bincount(pre, weights=np.where(signed_counts > 0, mag, 0.0), minlength=n)
    inh = np.bincount(pre, weights=np.where(signed_counts < 0, mag, 0.0), minlength=n)
    sign = np.where(exc + inh == 0, 0, np.where(inh > exc, -1, 1)).astype(np.int8)
    return sign, int(((exc > 0) & (inh > 0)).sum())


def read_transmitter_table(
    path: Path, keys: Sequence[str], *, key_kind: str = "id"
) -> tuple[str, list, list[str | None]]:
    """Read a transmitter table: one row per neuron id (or cell type) and its transmitter.

    Returns ``(key_column, keys, transmitters)``: the first of ``keys`` the file has, its
    values (int ids, or str types when that column is a type column) and the transmitter of
    each row. A key listed twice with different transmitters raises, naming both rows.
    """
    present = columns_of(require_file(path, "transmitter table"))
    key = next((k for k in keys if k in present), None)
    nt = next((c for c in TRANSMITTER_COLUMNS if c in present), None)
    if key is None or nt is None:
        need = []
        if key is None:
            need.append(f"a key column ({' or '.join(keys)})")
        if nt is None:
            need.append(f"a transmitter column ({' or '.join(TRANSMITTER_COLUMNS)})")
        raise ConnectomeError(
            f"{path}: the transmitter table needs {' and '.join(need)}; it has columns "
            f"{', '.join(repr(c) for c in present)}"
        )
    as_text = key_kind == "type"
    table = read_table(path, [key, nt], strings=[nt, key] if as_text else [nt])
    if as_text:
        values: list = text_column(table, key)
    else:
        values = int_column(table, key, path, kind="id").tolist()
    transmitters = text_column(table, nt)
    seen: dict[Any, int] = {}
    for row, (k, t) in enumerate(zip(values, transmitters, strict=True)):
        if k is None:
            raise ConnectomeError(f"{where(path, row)}: column {key!r} is empty; fill or remove it")
        if k in seen and transmitters[seen[k]] != t:
            raise ConnectomeError(
                f"{path}: {key} {k!r} has transmitter {transmitters[seen[k]]!r} in row "
                f"{seen[k] + 1} and {t!r} in row {row + 1}; keep one"
            )
        seen.setdefault(k, row)
    return key, values, transmitters


def check_missing_rule(missing: str) -> None:
    """``missing_transmitter`` must be one of :data:`MISSING_TRANSMITTER_RULES`."""
    if missing not in MISSING_TRANSMITTER_RULES:
        raise ConnectomeError(
            f"missing_transmitter={missing!r}; use 'excitatory' (count such neurons and treat "
            f"them as excitatory) or 'error'"
        )


def lacking_transmitter(transmitter: Sequence[str | None], has_output: np.ndarray) -> np.ndarray:
    """bool per neuron: it has output synapses but no transmitter."""
    return has_output & np.array([t is None for t in transmitter], dtype=bool)


def neuron_transmitters(
    path: Path,
    neuron_keys: Sequence,
    key_columns: Sequence[str],
    *,
    key_kind: str,
    has_output: np.ndarray,
    ids: np.ndarray,
    missing: str,
    rules: dict[str, int],
) -> tuple[list[str | None], np.ndarray]:
    """Transmitter of each neuron from a transmitter table, and the sign of its synapses.

    ``neuron_keys`` holds each neuron's key into the table (its id, or its cell type when
    ``key_kind="type"``). Table rows that match no neuron are counted
    (``transmitter_rows_unused``). A neuron with output synapses but no transmitter is
    excitatory and counted (``neurons_without_transmitter``) when ``missing="excitatory"``;
    with ``missing="error"`` it raises, naming the neuron.
    """
    check_missing_rule(missing)
    key_column, table_keys, table_nts = read_transmitter_table(path, key_columns, key_kind=key_kind)
    lookup = dict(zip(table_keys, table_nts, strict=True))
    transmitter = [lookup.get(k) if k is not None else None for k in neuron_keys]
    used = set(neuron_keys)
    rules["transmitter_rows_unused"] = sum(1 for k in table_keys if k not in used)
    lacking = lacking_transmitter(transmitter, has_output)
    if lacking.any() and missing == "error":
        i = int(np.flatnonzero(lacking)[0])
        raise ConnectomeError(
            f"{path}: neuron {ids[i]} (key {key_column}={neuron_keys[i]!r}) has output "
            f"synapses but no transmitter ({int(lacking.sum())} such neurons); add a row for "
            f"it, or load with missing_transmitter='excitatory' to count them as excitatory"
        )
    rules["neurons_without_transmitter"] = int(lacking.sum())
    return transmitter, signs_of(transmitter)


def transmitter_signs(
    transmitter: Sequence[str | None],
    has_output: np.ndarray,
    ids: np.ndarray,
    *,
    missing: str,
    where_from: str,
    rules: dict[str, int],
) -> np.ndarray:
    """int8 sign of each neuron from its transmitter name (None: unknown), by the Shiu rule.

    A neuron with output synapses but no transmitter is excitatory and counted
    (``neurons_without_transmitter``) when ``missing="excitatory"``, and raises naming it and
    ``where_from`` (the file or column the transmitters come from) when ``missing="error"``.
    Neurons with outputs whose transmitter is histamine are counted
    (``histamine_neurons_excitatory``): the Shiu et al. rule makes them excitatory, although
    histamine is inhibitory at fly photoreceptor synapses.
    """
    check_missing_rule(missing)
    lacking = lacking_transmitter(transmitter, has_output)
    if lacking.any() and missing == "error":
        i = int(np.flatnonzero(lacking)[0])
        raise ConnectomeError(
            f"{where_from}: neuron {ids[i]} has output synapses but no transmitter "
            f"({int(lacking.sum())} such neurons); load with missing_transmitter='excitatory' "
            f"to count them as excitatory"
        )
    rules["neurons_without_transmitter"] = int(lacking.sum())
    histamine = np.array([(t or "").strip().lower() == "histamine" for t in transmitter], bool)
    rules["histamine_neurons_excitatory"] = int((histamine & has_output).sum())
    return signs_of(transmitter)


def union_ids(
    listed: np.ndarray | None,
    pre_id: np.ndarray,
    post_id: np.ndarray,
    *,
    columns: tuple[str, str],
    conn_path: Path,
    neurons_path: Path | None,
    allow_unknown: bool,
    rules: dict[str, int],
    listed_hint: str | None = None,
) -> np.ndarray:
    """Sorted unique ids of a neuron table built from a listed table and the connections.

    Without a listed table (``listed`` None) the connections define the neurons. With one,
    a connection id the table lacks raises, naming the first row and the id, unless
    ``allow_unknown``, which adds it (counted ``unknown_ids_added``). ``listed_hint``: what
    the error says after "is not in" (default: the neuron table and what to do about it).
    """
    if listed is None:
        return np.unique(np.concatenate([pre_id, post_id]))
    known = np.sort(listed)
    missing_pre = positions(known, pre_id) < 0
    missing_post = positions(known, post_id) < 0
    if not allow_unknown and (missing_pre.any() or missing_post.any()):
        row = int(np.flatnonzero(missing_pre | missing_post)[0])
        column, value = (
            (columns[0], pre_id[row]) if missing_pre[row] else (columns[1], post_id[row])
        )
        hint = listed_hint or (
            f"{neurons_path}; add the neuron there, use the neuron table of the same release"
        )
        raise ConnectomeError(
            f"{where(conn_path, row)}: {column} {value} is not in {hint}, or load with "
            f"allow_unknown_ids=True to add it"
        )
    added = np.concatenate([pre_id[missing_pre], post_id[missing_post]])
    rules["unknown_ids_added"] = int(np.unique(added).size)
    return np.unique(np.concatenate([listed, pre_id, post_id]))


def align(values: Sequence, listed_ids: np.ndarray, ids: np.ndarray) -> list:
    """Per-row ``values`` of a listed table reordered to ``ids``; None for ids it lacks."""
    rows = positions(listed_ids, ids)
    return [values[r] if r >= 0 else None for r in rows]


def signs_of(transmitters: Sequence[str | None]) -> np.ndarray:
    """int8 +1/-1 per transmitter name (Shiu et al. rule: GABA and glutamate inhibitory)."""
    return np.array([transmitter_sign(t) for t in transmitters], dtype=np.int8)


# ------------------------------------------------------------------------------ finish
def neuron_table(ids: np.ndarray, columns: Mapping[str, Any]) -> pa.Table:
    """Neuron table with int64 ``id`` first, then every column in ``columns`` not None."""
    data: dict[str, Any] = {"id": pa.array(np.asarray(ids, dtype=np.int64), type=pa.int64())}
    for name, values in columns.items():
        if values is not None:
            data[name] = values
    return pa.table(data)


def finish(
    *,
    fmt: str,
    neurons: pa.Table,
    pre: np.ndarray,
    post: np.ndarray,
    counts: np.ndarray,
    files: Sequence[Path],
    options: Mapping[str, Any],
    sign_rule: str,
    rule_counts: Mapping[str, int],
    gap_junctions: pa.Table | None = None,
) -> Connectome:
    """Build the Connectome: provenance with checksum and counted rules, then :func:`from_edges`.

    Adds ``self_connections_kept`` (distinct neurons that synapse onto themselves; they stay
    in the connectome). Rules that never applied are left out of ``counts``, as
    :func:`from_edges` does for the ones it adds (``pair_rows_merged``,
    ``zero_sum_pairs_dropped``).
    """
    pre = np.asarray(pre, dtype=np.int64)
    post = np.asarray(post, dtype=np.int64)
    info = dict(rule_counts)
    info["self_connections_kept"] = int(np.unique(pre[pre == post]).size)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    prov = Provenance(
        format=fmt,
        sources=tuple(str(Path(f).resolve()) for f in files),
        checksum=sources_checksum(fmt, files, options),
        sign_rule=sign_rule,
        counts={k: int(v) for k, v in info.items() if v},
        options=dict(options),
    )
    return from_edges(neurons, pre, post, counts, prov, gap_junctions=gap_junctions)
