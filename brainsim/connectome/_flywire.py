"""Loader ``flywire``: the FlyWire Codex release files (e.g. release 783).

``source`` is the folder of a Codex download, or the path of its connections file (the
optional files are then looked for next to it):

``connections*.csv`` or ``connections*.csv.gz`` (required; exactly one in the folder)
    ``pre_root_id``, ``post_root_id`` (int64 root ids), ``neuropil`` (optional here),
    ``syn_count`` (synapses) and ``nt_type`` (predicted transmitter of those synapses: ACH,
    GABA, GLUT, DA, SER, OCT). One row per pair *and neuropil*: the rows of a pair are
    summed into one connection (counted as ``pair_rows_merged``).
``neurons.csv`` or ``neurons.csv.gz`` (optional)
    ``root_id`` and, optionally, ``nt_type`` (the neuron's predicted transmitter).
``classification.csv`` or ``classification.csv.gz`` (optional)
    ``root_id`` and annotations; the loader keeps ``class``, ``super_class``, ``side`` and a
    cell type column (``cell_type``, else ``primary_type``) where present.

Neuron table: the union of the ids of ``neurons.csv`` and of the connections, sorted
ascending (row i = internal index i), with columns ``id``, ``cell_type``, ``class``,
``super_class``, ``side`` (from the classification file, null where it has no row),
``input_neuropil`` and ``output_neuropil`` (with a ``neuropil`` column: the neuropil holding
most of the neuron's input, resp. output, synapses; ties alphabetical, null without such
synapses), ``transmitter`` and ``sign`` (int8). ``transmitter`` is the ``nt_type`` carrying most of
the neuron's output synapses (ties: alphabetically first); for a neuron without labelled
output synapses it is the ``nt_type`` of ``neurons.csv``, else null. ``sign`` follows the
per-neuron rule below whatever ``sign_rule`` is, and is 0 for a neuron without outputs.

Sign rules (``provenance.sign_rule``):

``per_neuron`` (default; Shiu et al. 2024)
    A neuron is inhibitory (-1) if most of its output synapses, summed over all its rows,
    have ``nt_type`` GABA or GLUT; otherwise excitatory (+1), ties included. Every
    connection of the neuron gets that sign.
``per_connection``
    Each row's own ``nt_type`` gives its sign; the signed rows of a pair are summed, so a
    pair can hold a net count of either sign. Pairs whose rows cancel exactly are left out
    (``zero_sum_pairs_dropped``).

Unknown ids: when ``neurons.csv`` is present, a connection whose id it lacks raises an
error naming the id, the file and the row; ``allow_unknown_ids=True`` adds such ids to the
neuron table instead (counted ``unknown_ids_added``).

Counted rules (``provenance.counts``):

- ``pair_rows_merged``: rows summed into a connection with an earlier row (neuropil split).
- ``duplicate_rows_merged``: rows that repeat an earlier row's pair and neuropil (or pair,
  without a neuropil column); summed. ``duplicates="error"`` raises instead.
- ``zero_count_rows_dropped``: rows with ``syn_count`` 0; left out.
- ``rows_without_nt_type``: rows with an empty ``nt_type``; their synapses count as
  excitatory under both rules.
- ``unknown_ids_added``: see above.
- ``classification_rows_unused``: classification rows whose id is not in the neuron table.
- ``self_connections_kept``: neurons that synapse onto themselves; kept.
- ``zero_sum_pairs_dropped``: see ``per_connection``.

A negative, fractional, empty or NaN ``syn_count``, an id that is not an integer, a missing
column or a root id listed twice in ``neurons.csv`` or ``classification.csv`` raises a
:class:`ConnectomeError` naming the file and the 1-based data row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome, transmitter_sign
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._regions import main_neuropils
from brainsim.connectome._tables import (
    check_duplicates_option,
    check_unique_ids,
    count_duplicate_rows,
    find_one,
    finish,
    first_duplicate_rows,
    int_column,
    label_codes,
    neuron_table,
    positions,
    read_table,
    text_column,
    union_ids,
)

FLYWIRE_SIGN_RULES = ("per_neuron", "per_connection")
CONNECTION_PATTERNS = ("connections*.csv", "connections*.csv.gz")
NEURON_PATTERNS = ("neurons.csv", "neurons.csv.gz")
CLASSIFICATION_PATTERNS = ("classification.csv", "classification.csv.gz")
CELL_TYPE_COLUMNS = ("cell_type", "primary_type")
ANNOTATION_COLUMNS = ("class", "super_class", "side")


def load_flywire(
    source: str | Path,
    *,
    sign_rule: str = "per_neuron",
    allow_unknown_ids: bool = False,
    duplicates: str = "sum",
) -> Connectome:
    """Load a FlyWire Codex download (connections, and optional neurons and classification).

    Args:
        source: the folder, or the path of the connections file.
        sign_rule: ``"per_neuron"`` (Shiu et al.: majority transmitter of each neuron's
            output synapses) or ``"per_connection"`` (each row's own ``nt_type``).
        allow_unknown_ids: add connection ids missing from ``neurons.csv`` to the neuron
            table (counted) instead of raising.
        duplicates: ``"sum"`` rows repeating a pair and neuropil, or ``"error"``.
    """
    if sign_rule not in FLYWIRE_SIGN_RULES:
        raise ConnectomeError(
            f"sign_rule={sign_rule!r} for format 'flywire'; use 'per_neuron' or 'per_connection'"
        )
    check_duplicates_option(duplicates)
    conn_path, neurons_path, class_path = _locate(Path(source))
    rules: dict[str, int] = {}

    table = read_table(
        conn_path,
        ["pre_root_id", "post_root_id", "syn_count", "nt_type"],
        optional=["neuropil"],
        strings=["neuropil", "nt_type"],
    )
    pre_id = int_column(table, "pre_root_id", conn_path, kind="id")
    post_id = int_column(table, "post_root_id", conn_path, kind="id")
    syn = int_column(table, "syn_count", conn_path, kind="count")
    nt_code, nt_labels = label_codes(table, "nt_type")

    listed_ids, listed_nt = (
        _read_neurons(neurons_path) if neurons_path else (np.zeros(0, np.int64), [])
    )
    ids = union_ids(
        listed_ids if neurons_path else None,
        pre_id,
        post_id,
        columns=("pre_root_id", "post_root_id"),
        conn_path=conn_path,
        neurons_path=neurons_path,
        allow_unknown=allow_unknown_ids,
        rules=rules,
    )
    n = ids.size
    pre = np.searchsorted(ids, pre_id)
    post = np.searchsorted(ids, post_id)
    neuropil = label_codes(table, "neuropil") if "neuropil" in table.column_names else None
    duplicate_rows(conn_path, n, pre, post, ids, neuropil, duplicates, rules)

    keep = syn != 0
    rules["zero_count_rows_dropped"] = int((~keep).sum())
    pre, post, syn, nt_code = pre[keep], post[keep], syn[keep], nt_code[keep]
    if None in nt_labels:
        rules["rows_without_nt_type"] = int((nt_code == nt_labels.index(None)).sum())

    label_sign = np.array([transmitter_sign(t) for t in nt_labels], dtype=np.int64)
    neuron_sign, transmitter = _per_neuron(n, pre, syn, nt_code, nt_labels, label_sign)
    if neurons_path is not None:
        _fill_transmitters(transmitter, ids, listed_ids, listed_nt)
    if sign_rule == "per_neuron":
        signed = neuron_sign[pre].astype(np.int64) * syn
    else:
        signed = label_sign[nt_code] * syn

    columns: dict = {}
    files = [conn_path]
    if neurons_path is not None:
        files.append(neurons_path)
    if class_path is not None:
        files.append(class_path)
        columns.update(_read_classification(class_path, ids, rules))
    if neuropil is not None:
        columns.update(main_neuropils(n, pre, post, syn, neuropil[0][keep], neuropil[1]))
    columns["transmitter"] = pa.array(transmitter, pa.string())
    columns["sign"] = pa.array(neuron_sign, pa.int8())
    options = {
        "sign_rule": sign_rule,
        "allow_unknown_ids": allow_unknown_ids,
        "duplicates": duplicates,
    }
    return finish(
        fmt="flywire",
        neurons=neuron_table(ids, columns),
        pre=pre,
        post=post,
        counts=signed,
        files=files,
        options=options,
        sign_rule=sign_rule,
        rule_counts=rules,
    )


def _locate(source: Path) -> tuple[Path, Path | None, Path | None]:
    """Connections file, and the neurons and classification files next to it if any."""
    if source.is_file():
        folder, conn = source.parent, source
    elif source.is_dir():
        folder = source
        conn = find_one(folder, CONNECTION_PATTERNS, "connections file", required=True)
    else:
        raise ConnectomeError(
            f"{source}: no such file or folder; pass a FlyWire Codex folder holding "
            f"connections.csv.gz (and optionally neurons.csv.gz, classification.csv.gz)"
        )
    neurons = find_one(folder, NEURON_PATTERNS, "neuron table", required=False)
    classification = find_one(folder, CLASSIFICATION_PATTERNS, "classification", required=False)
    assert conn is not None
    return conn, neurons, classification


def duplicate_rows(
    path: Path,
    n: int,
    pre: np.ndarray,
    post: np.ndarray,
    ids: np.ndarray,
    neuropil: tuple[np.ndarray, list[str | None]] | None,
    duplicates: str,
    rules: dict[str, int],
    columns: tuple[str, str] = ("pre_root_id", "post_root_id"),
) -> None:
    """Rows repeating the pair and neuropil of an earlier row: counted, or an error.

    ``neuropil`` is each row's neuropil code and the labels (:func:`label_codes`), or None
    for a table without neuropils. Pair and neuropil are packed into one int64 key
    (pre, post < n; neuropil code < number of neuropils), so one sort finds the repeats
    even in a 16M-row file.
    """
    key = pre.astype(np.int64) * n + post
    code, labels = neuropil if neuropil is not None else (None, [])
    if code is not None:
        key = key * max(len(labels), 1) + code
    if duplicates == "error":
        hit = first_duplicate_rows([key])
        if hit is not None:
            a, b = hit
            shown = f", neuropil={labels[code[a]]}" if code is not None else ""
            raise ConnectomeError(
                f"{path}: rows {a + 1} and {b + 1} name the same pair and neuropil "
                f"({columns[0]}={ids[pre[a]]}, {columns[1]}={ids[post[a]]}{shown}); remove "
                f"the duplicate, or load with duplicates='sum' to add their counts"
            )
    rules["duplicate_rows_merged"] = count_duplicate_rows([key])


def _read_neurons(path: Path) -> tuple[np.ndarray, list[str | None]]:
    """Root ids of ``neurons.csv`` and their ``nt_type`` (None where absent)."""
    table = read_table(path, ["root_id"], optional=["nt_type"], strings=["nt_type"])
    ids = int_column(table, "root_id", path, kind="id")
    check_unique_ids(ids, path, "root_id")
    nts = text_column(table, "nt_type") if "nt_type" in table.column_names else [None] * ids.size
    return ids, nts


def _per_neuron(
    n: int,
    pre: np.ndarray,
    syn: np.ndarray,
    code: np.ndarray,
    labels: list[str | None],
    label_sign: np.ndarray,
) -> tuple[np.ndarray, list[str | None]]:
    """Shiu et al.'s per-neuron rule: sign and majority transmitter of each neuron's outputs."""
    n_labels = max(len(labels), 1)
    by_label = np.bincount(
        pre * n_labels + code, weights=syn.astype(np.float64), minlength=n * n_labels
    ).reshape(n, n_labels)
    return majority_output(by_label, labels, label_sign)


def majority_output(
    by_label: np.ndarray, labels: list[str | None], label_sign: np.ndarray
) -> tuple[np.ndarray, list[str | None]]:
    """Sign and transmitter of each neuron from its output synapses per transmitter label.

    ``by_label[i, k]``: synapses (or synapse-weighted probabilities) of neuron i's outputs
    labelled ``labels[k]``. The neuron is inhibitory (-1) if the inhibitory labels carry
    more than the rest (unlabelled synapses count as excitatory), +1 otherwise, 0 without
    outputs; its transmitter is the label carrying most (ties: alphabetically first).
    """
    n, n_labels = by_label.shape
    total = by_label.sum(axis=1)
    inhibitory_label = np.zeros(n_labels, dtype=bool)
    inhibitory_label[: len(labels)] = label_sign < 0
    inhibitory = by_label[:, inhibitory_label].sum(axis=1)
    sign = np.where(total == 0, 0, np.where(inhibitory > total - inhibitory, -1, 1))
    transmitter: list[str | None] = [None] * n
    known = [i for i, t in enumerate(labels) if t is not None]
    if known:
        sub = by_label[:, known]
        best = np.argmax(sub, axis=1)  # first maximum = alphabetically first label
        for i in np.flatnonzero(sub.sum(axis=1) > 0):
            transmitter[i] = labels[known[best[i]]]
    return sign.astype(np.int8), transmitter


def _fill_transmitters(
    transmitter: list[str | None], ids: np.ndarray, listed: np.ndarray, listed_nt: list
) -> None:
    """Neurons without labelled outputs take the ``nt_type`` that ``neurons.csv`` gives them."""
    rows = positions(listed, ids)
    for i in range(ids.size):
        if transmitter[i] is None and rows[i] >= 0:
            transmitter[i] = listed_nt[rows[i]]


def _read_classification(path: Path, ids: np.ndarray, rules: dict[str, int]) -> dict:
    """``cell_type``, ``class``, ``super_class``, ``side`` aligned to the neuron table."""
    wanted = [*CELL_TYPE_COLUMNS, *ANNOTATION_COLUMNS]
    table = read_table(path, ["root_id"], optional=wanted, strings=wanted)
    class_ids = int_column(table, "root_id", path, kind="id")
    check_unique_ids(class_ids, path, "root_id")
    row_of = positions(ids, class_ids)
    rules["classification_rows_unused"] = int((row_of < 0).sum())
    used = row_of >= 0
    out: dict[str, pa.Array] = {}
    cell_type = next((c for c in CELL_TYPE_COLUMNS if c in table.column_names), None)
    sources = {"cell_type": cell_type, **{c: c for c in ANNOTATION_COLUMNS}}
    for name, column in sources.items():
        if column is None or column not in table.column_names:
            continue
        values = np.array(text_column(table, column), dtype=object)
        aligned = np.full(ids.size, None, dtype=object)
        aligned[row_of[used]] = values[used]
        out[name] = pa.array(aligned.tolist(), pa.string())
    return out
