"""Loader ``flywire_feather``: FlyWire's own release of its connectome as a Feather file.

``source`` is a folder holding exactly one ``proofread_connections_<release>.feather`` (or
the path of that file); an annotation table next to it is used when present:

``proofread_connections_783.feather`` (required)
    The Zenodo release of the FlyWire connectome, record 10676866, "FlyWire Whole-brain
    Connectome Connectivity Data", version 783.0 (Dorkenwald et al. 2024; columns as listed
    on the record). One row per pair *and neuropil*: ``pre_pt_root_id``, ``post_pt_root_id``
    (int64 root ids), ``neuropil`` (text), ``syn_count`` (synapses) and the mean transmitter
    probabilities of those synapses (Eckstein et al. 2024): ``gaba_avg``, ``ach_avg``,
    ``glut_avg``, ``oct_avg``, ``ser_avg``, ``da_avg``. There is no transmitter name column.
``Supplemental_file1_neuron_annotations.tsv`` (optional)
    The FlyWire annotations of Schlegel et al. 2024 (github.com/flyconnectome/
    flywire_annotations, ``supplemental_files/``), tab-separated: ``root_id`` and, used
    here where present, ``cell_type``, ``cell_class``, ``super_class``, ``side``. Its
    ``root_id`` is a release-783 id in the current files; versions before 3.0 of that
    repository used release-630 ids (its ``Supplemental_file1_columns.md``), so a table of
    another release shows up as unknown ids (below).

Neuron table: the ids of the connections (and of the annotation table, when given), sorted
ascending (row i = internal index i), with ``id``, ``cell_type``, ``class`` (from
``cell_class``), ``super_class``, ``side`` (annotation table; null where it has no row),
``input_neuropil``, ``output_neuropil`` (the neuropil holding most of the neuron's input,
resp. output, synapses; see :mod:`brainsim.connectome._regions`), ``transmitter`` and
``sign`` (int8; 0 for a neuron without outputs). Transmitter names are Codex's: ACH, DA,
GABA, GLUT, OCT, SER.

A row's *prediction* is its six probabilities. ``transmitter`` is the transmitter with the
largest synapse-weighted probability summed over the neuron's output rows (i.e. the mean
prediction over its output synapses, as Shiu et al. 2024 and the annotation table's
``top_nt``; ties: alphabetically first).

Sign rules (``provenance.sign_rule``), both shared with the Codex loader ``flywire``:

``per_neuron`` (default; Shiu et al. 2024)
    A neuron is inhibitory (-1) if GABA and glutamate carry more of its synapse-weighted
    output probability than the other transmitters together (synapses of rows without a
    prediction count as excitatory), else excitatory (+1). Every connection of the neuron
    gets that sign.
``per_connection``
    Each row's own most probable transmitter (ties: alphabetically first) gives the sign of
    its synapses; the signed rows of a pair are summed, and pairs whose rows cancel exactly
    are left out (``zero_sum_pairs_dropped``).

Unknown ids: with the annotation table present, a connection id it lacks raises an error
naming the file, the row and the id; ``allow_unknown_ids=True`` adds such ids to the neuron
table instead (counted ``unknown_ids_added``).

Counted rules (``provenance.counts``):

- ``pair_rows_merged``: rows summed into a connection with an earlier row (neuropil split).
- ``duplicate_rows_merged``: rows that repeat an earlier row's pair and neuropil; summed.
  ``duplicates="error"`` raises instead, naming both rows.
- ``zero_count_rows_dropped``: rows with ``syn_count`` 0; left out.
- ``rows_without_prediction``: rows with a NaN or empty probability; their synapses count
  as excitatory under both rules and take no part in ``transmitter``.
- ``unknown_ids_added``, ``self_connections_kept``, ``zero_sum_pairs_dropped``: as above.

A negative, fractional, empty or NaN ``syn_count``, an id that is not an integer, a
probability outside [0, 1], a missing column or a root id listed twice in the annotation
table raises a :class:`ConnectomeError` naming the file and the 1-based data row. The file
is read in chunks of record batches (:mod:`brainsim.connectome._feather`), twice: ids first,
then the rest, so that only int32 per-row arrays are kept.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from brainsim.connectome._connectome import Connectome, transmitter_sign
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._feather import id_column, iter_chunks
from brainsim.connectome._flywire import FLYWIRE_SIGN_RULES, duplicate_rows, majority_output
from brainsim.connectome._regions import main_neuropils
from brainsim.connectome._tables import (
    align,
    check_duplicates_option,
    check_unique_ids,
    find_one,
    finish,
    int_column,
    neuron_table,
    positions,
    read_table,
    text_column,
    where,
)

PRE, POST, NEUROPIL, SYN = "pre_pt_root_id", "post_pt_root_id", "neuropil", "syn_count"
# probability column -> Codex transmitter name, in alphabetical order of the names (the
# order ties are broken in)
NT_COLUMNS = {
    "ach_avg": "ACH",
    "da_avg": "DA",
    "gaba_avg": "GABA",
    "glut_avg": "GLUT",
    "oct_avg": "OCT",
    "ser_avg": "SER",
}
LABELS: list[str | None] = [None, *NT_COLUMNS.values()]
CONNECTION_PATTERNS = ("proofread_connections_*.feather",)
ANNOTATION_PATTERNS = (
    "Supplemental_file1*annotations.tsv",
    "Supplemental_file1*annotations.tsv.gz",
)
# neuron table column -> annotation table column
ANNOTATION_COLUMNS = {
    "cell_type": "cell_type",
    "class": "cell_class",
    "super_class": "super_class",
    "side": "side",
}
HINT = (
    "The flywire_feather format reads FlyWire's proofread_connections_783.feather (Zenodo "
    "record 10676866)."
)
_RELEASE = re.compile(r"proofread_connections_(\d+)\.feather")
_TOLERANCE = 1e-4  # probabilities are float32 means; allow rounding just outside [0, 1]


def load_flywire_feather(
    source: str | Path,
    *,
    sign_rule: str = "per_neuron",
    allow_unknown_ids: bool = False,
    duplicates: str = "sum",
) -> Connectome:
    """Load ``proofread_connections_<release>.feather`` and the optional annotation table.

    Args:
        source: the folder, or the path of the connections file.
        sign_rule: ``"per_neuron"`` (Shiu et al.) or ``"per_connection"``.
        allow_unknown_ids: add connection ids missing from the annotation table.
        duplicates: ``"sum"`` rows repeating a pair and neuropil, or ``"error"``.
    """
    if sign_rule not in FLYWIRE_SIGN_RULES:
        raise ConnectomeError(
            f"sign_rule={sign_rule!r} for format 'flywire_feather'; use 'per_neuron' or "
            f"'per_connection'"
        )
    check_duplicates_option(duplicates)
    conn_path, ann_path = _locate(Path(source))
    rules: dict[str, int] = {}
    annotations = _read_annotations(ann_path) if ann_path is not None else None
    ids = _neuron_ids(conn_path, ann_path, annotations, allow_unknown_ids, rules)
    n = ids.size
    pre, post, syn, np_code, np_labels, top, by_label = _read_rows(conn_path, ids)
    neuropil = (np_code, np_labels)
    duplicate_rows(conn_path, n, pre, post, ids, neuropil, duplicates, rules, (PRE, POST))

    keep = syn != 0
    rules["zero_count_rows_dropped"] = int((~keep).sum())
    pre, post, syn, np_code, top = pre[keep], post[keep], syn[keep], np_code[keep], top[keep]
    rules["rows_without_prediction"] = int((top == 0).sum())
    label_sign = np.array([transmitter_sign(t) for t in LABELS], dtype=np.int64)
    neuron_sign, transmitter = majority_output(by_label, LABELS, label_sign)
    if sign_rule == "per_neuron":
        signed = neuron_sign[pre].astype(np.int64) * syn
    else:
        signed = label_sign[top] * syn

    columns: dict = {}
    files = [conn_path]
    if annotations is not None:
        files.append(ann_path)
        listed, values = annotations
        for name, v in values.items():
            columns[name] = pa.array(align(v, listed, ids), pa.string())
    columns.update(main_neuropils(n, pre, post, syn, np_code, np_labels))
    columns["transmitter"] = pa.array(transmitter, pa.string())
    columns["sign"] = pa.array(neuron_sign, pa.int8())
    options: dict = {
        "sign_rule": sign_rule,
        "allow_unknown_ids": allow_unknown_ids,
        "duplicates": duplicates,
    }
    release = _RELEASE.fullmatch(conn_path.name)
    if release:
        options["release"] = release.group(1)
    return finish(
        fmt="flywire_feather",
        neurons=neuron_table(ids, columns),
        pre=pre,
        post=post,
        counts=signed,
        files=files,
        options=options,
        sign_rule=sign_rule,
        rule_counts=rules,
    )


def _locate(source: Path) -> tuple[Path, Path | None]:
    if source.is_file():
        folder, conn = source.parent, source
    elif source.is_dir():
        folder = source
        conn = find_one(folder, CONNECTION_PATTERNS, "connections file", required=True)
    else:
        raise ConnectomeError(
            f"{source}: no such file or folder; pass the folder holding "
            f"proofread_connections_783.feather (Zenodo record 10676866)"
        )
    ann = find_one(folder, ANNOTATION_PATTERNS, "annotation table", required=False)
    assert conn is not None
    return conn, ann


def _read_annotations(path: Path) -> tuple[np.ndarray, dict[str, list]]:
    """Root ids of the annotation table and its annotation columns (None where empty)."""
    wanted = list(ANNOTATION_COLUMNS.values())
    table = read_table(path, ["root_id"], optional=wanted, strings=wanted)
    listed = int_column(table, "root_id", path, kind="id")
    check_unique_ids(listed, path, "root_id")
    values = {
        name: text_column(table, column)
        for name, column in ANNOTATION_COLUMNS.items()
        if column in table.column_names
    }
    return listed, values


def _neuron_ids(
    conn_path: Path,
    ann_path: Path | None,
    annotations: tuple[np.ndarray, dict] | None,
    allow_unknown: bool,
    rules: dict[str, int],
) -> np.ndarray:
    """First pass: the sorted neuron ids, checking connection ids against the annotations."""
    known = np.sort(annotations[0]) if annotations is not None else None
    seen = []
    for first, chunk in iter_chunks(conn_path, [PRE, POST], hint=HINT):
        pre = id_column(chunk, PRE, conn_path, first_row=first)
        post = id_column(chunk, POST, conn_path, first_row=first)
        if known is not None and not allow_unknown:
            bad_pre, bad_post = positions(known, pre) < 0, positions(known, post) < 0
            if bad_pre.any() or bad_post.any():
                row = int(np.flatnonzero(bad_pre | bad_post)[0])
                column, value = (PRE, pre[row]) if bad_pre[row] else (POST, post[row])
                raise ConnectomeError(
                    f"{where(conn_path, first + row)}: {column} {value} is not in {ann_path}; "
                    f"use the annotation table of the same release (root ids change between "
                    f"releases), or load with allow_unknown_ids=True to add it"
                )
        seen += [np.unique(pre), np.unique(post)]
    in_file = np.unique(np.concatenate(seen)) if seen else np.zeros(0, np.int64)
    if known is None:
        return in_file
    rules["unknown_ids_added"] = int(np.setdiff1d(in_file, known).size)
    return np.union1d(known, in_file)


def _read_rows(conn_path: Path, ids: np.ndarray):
    """Second pass: per-row indices, counts, neuropil and top-transmitter codes, and the
    synapse-weighted probabilities summed per presynaptic neuron."""
    n = ids.size
    by_label = np.zeros((n, len(LABELS)), dtype=np.float64)
    np_index: dict[str | None, int] = {}
    parts: dict[str, list[np.ndarray]] = {"pre": [], "post": [], "syn": [], "np": [], "top": []}
    required = [PRE, POST, NEUROPIL, SYN, *NT_COLUMNS]
    for first, chunk in iter_chunks(conn_path, required, hint=HINT):
        pre = np.searchsorted(ids, id_column(chunk, PRE, conn_path, first_row=first))
        post = np.searchsorted(ids, id_column(chunk, POST, conn_path, first_row=first))
        syn = int_column(chunk, SYN, conn_path, kind="count", first_row=first)
        if syn.size and syn.max() > np.iinfo(np.int32).max:
            row = int(np.argmax(syn))
            raise ConnectomeError(f"{where(conn_path, first + row)}: {SYN} exceeds int32")
        probs = np.column_stack(
            [_probability(chunk, c, conn_path, first) for c in NT_COLUMNS]
        ).reshape(len(syn), len(NT_COLUMNS))
        has = np.isfinite(probs).all(axis=1)
        top = np.where(has, np.argmax(np.where(has[:, None], probs, 0.0), axis=1) + 1, 0)
        weights = syn.astype(np.float64)
        by_label[:, 0] += np.bincount(pre[~has], weights=weights[~has], minlength=n)
        for k in range(len(NT_COLUMNS)):
            by_label[:, k + 1] += np.bincount(
                pre[has], weights=weights[has] * probs[has, k], minlength=n
            )
        parts["pre"].append(pre.astype(np.int32))
        parts["post"].append(post.astype(np.int32))
        parts["syn"].append(syn.astype(np.int32))
        parts["np"].append(_neuropil_codes(chunk, np_index))
        parts["top"].append(top.astype(np.int8))
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    # codes in order of first appearance -> codes into the sorted labels (None first)
    np_labels = sorted(np_index, key=lambda s: (s is not None, s or ""))
    remap = np.zeros(max(len(np_index), 1), dtype=np.int32)
    for label, code in np_index.items():
        remap[code] = np_labels.index(label)
    np_code = remap[joined["np"]] if joined["np"].size else joined["np"]
    return (
        joined["pre"].astype(np.int64),
        joined["post"].astype(np.int64),
        joined["syn"].astype(np.int64),
        np_code,
        np_labels,
        joined["top"].astype(np.int64),
        by_label,
    )


def _probability(chunk: pa.Table, column: str, path: Path, first: int) -> np.ndarray:
    """float64 probabilities of one column, NaN where empty; a value outside [0, 1] raises."""
    arr = chunk.column(column).combine_chunks()
    t = arr.type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)):
        raise ConnectomeError(f"{path}: column {column!r} holds {t}, not probabilities")
    values = pc.fill_null(arr.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
    bad = np.isfinite(values) & ((values < -_TOLERANCE) | (values > 1 + _TOLERANCE))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ConnectomeError(
            f"{where(path, first + row)}: column {column!r} is {values[row]}, not a probability "
            f"(0 to 1); fix or remove the row"
        )
    return values


def _neuropil_codes(chunk: pa.Table, index: dict[str | None, int]) -> np.ndarray:
    """int32 codes of a chunk's neuropil names in ``index`` (extended with new names)."""
    arr = chunk.column(NEUROPIL).combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string()).dictionary_encode()
    names = [None if v is None else (str(v).strip() or None) for v in arr.dictionary.to_pylist()]
    for name in [*names, None]:
        index.setdefault(name, len(index))
    lookup = np.array([index[s] for s in names] or [0], dtype=np.int32)
    null = arr.indices.is_null().to_numpy(zero_copy_only=False)
    idx = arr.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(null, index[None], lookup[idx]).astype(np.int32)
