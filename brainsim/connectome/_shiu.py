"""Loader ``shiu``: the connectome files published with Shiu et al. 2024 (Nature).

``source`` is the folder that holds one release of the two files (or the path of either
file, which picks its folder and release):

``Completeness_783.csv``
    One row per neuron. The first column (its header is empty, as pandas writes an index)
    holds the FlyWire root id; column ``Completed`` (True/False) says whether the neuron was
    proofread. The row order defines the neuron indices: row 1 is index 0.
``Connectivity_783.parquet``
    One row per connection: ``Presynaptic_ID``, ``Postsynaptic_ID`` (root ids),
    ``Presynaptic_Index``, ``Postsynaptic_Index`` (0-based rows of the completeness file),
    ``Connectivity`` (synapse count), ``Excitatory`` (+1 or -1, the sign of the presynaptic
    neuron) and ``Excitatory x Connectivity`` (the signed synapse count).

Release 630 files (``Completeness_630.csv``, ``Connectivity_630.parquet``) are read the same
way. With ``release=None`` the loader uses 783 if its files are there, else 630.

Signs: ``sign_rule="given"`` (default) takes each row's signed count from the file.
``sign_rule="per_neuron"`` instead gives every connection of a neuron the majority sign of
that neuron's outputs in the file (they agree in the published files, where ``Excitatory``
is a property of the presynaptic neuron); rows whose sign this changes are counted
(``rows_sign_changed``).

Checks (each raises :class:`ConnectomeError` naming the file and the 1-based row or the id):
every id in the parquet file is in the completeness file; ``Presynaptic_Index`` and
``Postsynaptic_Index`` are the rows of their ids in the completeness file; ``Connectivity``
is a whole number >= 0; ``Excitatory`` is +1 or -1; ``Excitatory x Connectivity`` equals
their product; the completeness file lists each id once.

Counted rules (``provenance.counts``):

- ``zero_count_rows_dropped``: rows with ``Connectivity`` 0 carry no synapse and are left out.
- ``pair_rows_merged``: rows that repeat a (pre, post) pair are summed into one connection;
  ``duplicates="error"`` raises instead, naming both rows.
- ``self_connections_kept``: neurons that synapse onto themselves; kept.
- ``neurons_with_mixed_output_signs``: neurons whose output rows carry both signs; the
  neuron table's ``sign`` is then the sign of the majority of its output synapses.
- ``rows_sign_changed``: with ``sign_rule="per_neuron"``, rows whose sign the rule changed.

Neuron table: ``id`` (int64 root id), ``completed`` (bool) and ``sign`` (int8: the sign of
the neuron's outputs, 0 for a neuron without outgoing connections). The files carry no
transmitter names, so there is no ``transmitter`` column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._tables import (
    check_duplicates_option,
    check_no_duplicate_rows,
    check_unique_ids,
    columns_of,
    finish,
    int_column,
    neuron_table,
    output_signs,
    positions,
    read_table,
    require_file,
    where,
)

RELEASES = ("783", "630")
SHIU_SIGN_RULES = ("given", "per_neuron")

PRE_ID, POST_ID = "Presynaptic_ID", "Postsynaptic_ID"
PRE_INDEX, POST_INDEX = "Presynaptic_Index", "Postsynaptic_Index"
COUNT, EXCITATORY, SIGNED = "Connectivity", "Excitatory", "Excitatory x Connectivity"
CONNECTIVITY_COLUMNS = (PRE_ID, POST_ID, PRE_INDEX, POST_INDEX, COUNT, EXCITATORY, SIGNED)

_FILE_NAME = re.compile(r"(?:Completeness_(\d+)\.csv|Connectivity_(\d+)\.parquet)")


def load_shiu(
    source: str | Path,
    *,
    sign_rule: str = "given",
    release: str | int | None = None,
    duplicates: str = "sum",
) -> Connectome:
    """Load Shiu et al.'s ``Completeness_<release>.csv`` and ``Connectivity_<release>.parquet``.

    Args:
        source: the folder holding both files, or the path of either.
        sign_rule: ``"given"`` (signed counts as in the file) or ``"per_neuron"`` (each
            neuron's majority output sign applied to all its connections).
        release: ``"783"`` or ``"630"``; None picks 783 when both are present.
        duplicates: ``"sum"`` repeated (pre, post) rows, or ``"error"``.
    """
    if sign_rule not in SHIU_SIGN_RULES:
        raise ConnectomeError(
            f"sign_rule={sign_rule!r} for format 'shiu'; use 'given' (the file's signs) or "
            f"'per_neuron'"
        )
    check_duplicates_option(duplicates)
    folder, release = _locate(Path(source), release)
    comp_path = require_file(
        folder / f"Completeness_{release}.csv",
        "completeness file",
        f"The shiu format needs Completeness_{release}.csv next to Connectivity_{release}.parquet.",
    )
    conn_path = require_file(
        folder / f"Connectivity_{release}.parquet",
        "connectivity file",
        f"The shiu format needs Connectivity_{release}.parquet next to Completeness_{release}.csv.",
    )
    ids, completed = _read_completeness(comp_path)
    pre, post, count, signed = _read_connectivity(conn_path, comp_path, ids)

    rules: dict[str, int] = {}
    keep = count != 0
    rules["zero_count_rows_dropped"] = int((~keep).sum())
    if duplicates == "error":
        check_no_duplicate_rows([ids[pre], ids[post]], conn_path, "connection", [PRE_ID, POST_ID])
    pre, post, count, signed = pre[keep], post[keep], count[keep], signed[keep]

    n = ids.size
    sign, rules["neurons_with_mixed_output_signs"] = output_signs(n, pre, signed)
    if sign_rule == "per_neuron":
        new = sign[pre].astype(np.int64) * count
        rules["rows_sign_changed"] = int((new != signed).sum())
        signed = new

    neurons = neuron_table(ids, {"completed": completed, "sign": pa.array(sign, pa.int8())})
    options = {"release": release, "sign_rule": sign_rule, "duplicates": duplicates}
    return finish(
        fmt="shiu",
        neurons=neurons,
        pre=pre,
        post=post,
        counts=signed,
        files=[comp_path, conn_path],
        options=options,
        sign_rule=sign_rule,
        rule_counts=rules,
    )


def _locate(source: Path, release: str | int | None) -> tuple[Path, str]:
    """The folder and release to read; a file path names both."""
    wanted = None if release is None else str(release)
    if wanted is not None and wanted not in RELEASES:
        raise ConnectomeError(f"release={release!r}; the shiu files come as {', '.join(RELEASES)}")
    if source.is_file():
        m = _FILE_NAME.fullmatch(source.name)
        if m is None:
            raise ConnectomeError(
                f"{source}: not a shiu file; pass the folder holding "
                f"Completeness_783.csv and Connectivity_783.parquet"
            )
        found = m.group(1) or m.group(2)
        if wanted is not None and wanted != found:
            raise ConnectomeError(f"{source}: is release {found}, but release={release!r}")
        return source.parent, found
    if not source.is_dir():
        raise ConnectomeError(
            f"{source}: no such folder; pass the folder holding Completeness_783.csv and "
            f"Connectivity_783.parquet (Shiu et al. 2024)"
        )
    if wanted is not None:
        return source, wanted
    for r in RELEASES:
        if (source / f"Connectivity_{r}.parquet").exists() or (
            source / f"Completeness_{r}.csv"
        ).exists():
            return source, r
    raise ConnectomeError(
        f"{source}: no Shiu et al. files here (looked for Completeness_783.csv, "
        f"Connectivity_783.parquet and their 630 versions)"
    )


def _read_completeness(path: Path) -> tuple[np.ndarray, pa.Array]:
    """Root ids in file order (first column) and the ``Completed`` flags."""
    header = columns_of(path)
    if len(header) < 2 or "Completed" not in header[1:]:
        raise ConnectomeError(
            f"{path}: expected the root id in the first column and a 'Completed' column; the "
            f"file has columns {', '.join(repr(c) for c in header)}"
        )
    id_col = header[0]
    table = read_table(path, [id_col, "Completed"])
    ids = int_column(table, id_col, path, kind="id")
    check_unique_ids(ids, path, id_col or "first column")
    completed = table.column("Completed").combine_chunks()
    if pa.types.is_integer(completed.type):
        completed = completed.cast(pa.bool_())
    elif not pa.types.is_boolean(completed.type) and len(completed):
        raise ConnectomeError(
            f"{path}: column 'Completed' must hold True/False, found {completed.type}"
        )
    return ids, completed.cast(pa.bool_())


def _read_connectivity(
    path: Path, comp_path: Path, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated (pre, post) indices, synapse counts and signed counts of every row."""
    table = read_table(path, CONNECTIVITY_COLUMNS)
    pre_id = int_column(table, PRE_ID, path, kind="id")
    post_id = int_column(table, POST_ID, path, kind="id")
    pre = positions(ids, pre_id)
    post = positions(ids, post_id)
    _check_known(path, comp_path, pre, pre_id, post, post_id)
    for column, given, actual, id_col, id_values in (
        (PRE_INDEX, int_column(table, PRE_INDEX, path, kind="index"), pre, PRE_ID, pre_id),
        (POST_INDEX, int_column(table, POST_INDEX, path, kind="index"), post, POST_ID, post_id),
    ):
        bad = given != actual
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ConnectomeError(
                f"{where(path, row)}: {column} is {given[row]}, but {id_col} {id_values[row]} "
                f"is data row {actual[row] + 1} of {comp_path.name} (index {actual[row]}); "
                f"the indices must count the rows of the completeness file from 0. Are both "
                f"files from the same release?"
            )
    count = int_column(table, COUNT, path, kind="count")
    excitatory = int_column(table, EXCITATORY, path, kind="count", signed=True)
    bad = (excitatory != 1) & (excitatory != -1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ConnectomeError(
            f"{where(path, row)}: {EXCITATORY} is {excitatory[row]}; it must be +1 "
            f"(excitatory) or -1 (inhibitory)"
        )
    signed = int_column(table, SIGNED, path, kind="count", signed=True)
    bad = signed != excitatory * count
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ConnectomeError(
            f"{where(path, row)}: {SIGNED!r} is {signed[row]}, but {EXCITATORY} x "
            f"{COUNT} is {excitatory[row]} x {count[row]} = {excitatory[row] * count[row]}; "
            f"fix the row so the three columns agree"
        )
    return pre, post, count, signed


def _check_known(
    path: Path,
    comp_path: Path,
    pre: np.ndarray,
    pre_id: np.ndarray,
    post: np.ndarray,
    post_id: np.ndarray,
) -> None:
    """Every id of the connectivity file must be a row of the completeness file."""
    unknown = (pre < 0) | (post < 0)
    if not unknown.any():
        return
    row = int(np.flatnonzero(unknown)[0])
    column, value = (PRE_ID, pre_id[row]) if pre[row] < 0 else (POST_ID, post_id[row])
    n_ids = np.unique(np.concatenate([pre_id[pre < 0], post_id[post < 0]])).size
    raise ConnectomeError(
        f"{where(path, row)}: {column} {value} is not in {comp_path} ({n_ids} unknown ids in "
        f"all); every neuron of the connectivity file must be a row of the completeness "
        f"file. Are both files from the same release?"
    )
