"""Loader ``banc``: the Brain And Nerve Cord connectome (BANC v888; Bates et al. 2026).

``source`` is the folder holding the two compiled Feather files (or the path of the edge
list, which then picks that one among several):

``banc_888_meta.feather`` (required)
    One row per segment: ``banc_888_id`` (the root id at export 888, stored as text) and,
    kept where present, ``cell_type``, ``cell_class``, ``super_class``, ``side``, ``region``,
    ``proofread`` (text ``TRUE``/``FALSE``) and ``neurotransmitter_predicted`` (acetylcholine,
    gaba, glutamate, dopamine, serotonin, octopamine). 188,508 rows in the Harvard Dataverse
    copy (doi:10.7910/DVN/7WTH1N).
``banc_888_edgelist_simple_v3.feather`` (or ``..._v2``; exactly one, or name it)
    One row per connected pair: ``pre``, ``post`` (ids as text, matching ``banc_888_id``),
    ``count`` (synapses) and ``norm``, ``post_count``, ``pre_count`` (not used). v3 has
    13,620,865 rows; autapses are included.

Sources for these facts: the BANC data documentation of the SJCABS fly connectome tutorial
(github.com/sjcabs/fly_connectome_data_tutorial, ``data/dataset_documentation/
banc_data.md``) and public projects that pin these files (``gs://lee-lab_brain-and-nerve-
cord-fly-connectome/compiled_data/banc_888/``).

Ids stored as text become int64 by the rule of :func:`brainsim.connectome._feather.
id_column`: 1 to 19 decimal digits naming an integer below 2**63; anything else (empty,
``"7e3"``, ``"-5"``, ``" 12"``) raises, naming file, row and column. The release (``888``) is
read from the meta file's name, and with it the id column (``banc_<release>_id``).

Neurons: every row of the meta table, sorted by id (row i = internal index i). Neuron
table: ``id``, ``cell_type``, ``class`` (from ``cell_class``), ``super_class``, ``side``,
``region``, ``proofread`` (bool; null where neither TRUE nor FALSE), ``transmitter`` (from
``neurotransmitter_predicted``) and ``sign`` (int8; 0 for a neuron without outputs). The
table keeps non-proofread segments too; select by ``proofread`` or ``super_class``.

Signs: per neuron (``provenance.sign_rule = "per_neuron"``), as in Shiu et al. 2024:
GABA and glutamate inhibitory, every other transmitter excitatory.

Rules (counted in ``provenance.counts``, or an error naming file, row or id):

- an edge id that is not in the meta table raises (naming row and id);
  ``allow_unknown_ids=True`` adds it to the neuron table (``unknown_ids_added``).
- ``pair_rows_merged``: rows repeating a (pre, post) pair are summed;
  ``duplicates="error"`` raises instead, naming both rows.
- ``zero_count_rows_dropped``: rows with count 0.
- ``neurons_without_transmitter``, ``histamine_neurons_excitatory``: as for
  ``neuprint_flat``; ``missing_transmitter="error"`` raises for the former.
- ``self_connections_kept``.

A negative, fractional, empty or NaN count, an id that does not parse, a missing column or
an id listed twice in the meta table raises a :class:`ConnectomeError` naming the file and
the 1-based data row. The edge list is streamed in chunks (:mod:`brainsim.connectome._feather`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._feather import id_column, iter_chunks, read_feather, require_columns
from brainsim.connectome._tables import (
    align,
    check_duplicates_option,
    check_no_duplicate_rows,
    check_unique_ids,
    columns_of,
    find_one,
    finish,
    int_column,
    neuron_table,
    text_column,
    transmitter_signs,
    union_ids,
)

META_PATTERNS = ("banc_*_meta.feather",)
EDGE_PATTERNS = ("banc_*_edgelist_simple*.feather",)
# neuron table column -> meta column
META_COLUMNS = {
    "cell_type": "cell_type",
    "class": "cell_class",
    "super_class": "super_class",
    "side": "side",
    "region": "region",
}
TRANSMITTER = "neurotransmitter_predicted"
_RELEASE = re.compile(r"banc_(\d+)_meta\.feather")
HINT = "A BANC edge list has pre, post, count."


def load_banc(
    source: str | Path,
    *,
    allow_unknown_ids: bool = False,
    missing_transmitter: str = "excitatory",
    duplicates: str = "sum",
) -> Connectome:
    """Load BANC's ``banc_<release>_meta.feather`` and ``banc_<release>_edgelist_simple*``.

    Args:
        source: the folder, or the path of the edge list.
        allow_unknown_ids: add edge ids missing from the meta table instead of raising.
        missing_transmitter: ``"excitatory"`` (count neurons lacking one) or ``"error"``.
        duplicates: ``"sum"`` repeated (pre, post) rows, or ``"error"``.
    """
    check_duplicates_option(duplicates)
    meta_path, edge_path = _locate(Path(source))
    release = _RELEASE.fullmatch(meta_path.name)
    id_col = f"banc_{release.group(1)}_id" if release else "banc_888_id"
    rules: dict[str, int] = {}
    listed, meta = _read_meta(meta_path, id_col)
    pre_id, post_id, count = _read_edges(edge_path)
    if duplicates == "error":
        check_no_duplicate_rows([pre_id, post_id], edge_path, "pair", ["pre", "post"])
    ids = union_ids(
        listed,
        pre_id,
        post_id,
        columns=("pre", "post"),
        conn_path=edge_path,
        neurons_path=meta_path,
        allow_unknown=allow_unknown_ids,
        rules=rules,
        listed_hint=f"{meta_path} (column {id_col!r}); use the meta table of the same release",
    )
    keep = count != 0
    rules["zero_count_rows_dropped"] = int((~keep).sum())
    pre = np.searchsorted(ids, pre_id[keep])
    post = np.searchsorted(ids, post_id[keep])
    count = count[keep]
    has_output = np.bincount(pre, minlength=ids.size) > 0

    columns = {name: pa.array(align(v, listed, ids), pa.string()) for name, v in meta.items()}
    transmitter = columns.pop("transmitter").to_pylist()
    if "proofread" in columns:
        flag = {"TRUE": True, "FALSE": False}
        proofread = [flag.get((v or "").upper()) for v in columns["proofread"].to_pylist()]
        columns["proofread"] = pa.array(proofread, pa.bool_())
    sign = transmitter_signs(
        transmitter,
        has_output,
        ids,
        missing=missing_transmitter,
        where_from=f"{meta_path} (column {TRANSMITTER!r})",
        rules=rules,
    )
    columns["transmitter"] = pa.array(transmitter, pa.string())
    columns["sign"] = pa.array(np.where(has_output, sign, 0), pa.int8())
    options: dict = {
        "allow_unknown_ids": allow_unknown_ids,
        "missing_transmitter": missing_transmitter,
        "duplicates": duplicates,
    }
    if release:
        options["release"] = release.group(1)
    return finish(
        fmt="banc",
        neurons=neuron_table(ids, columns),
        pre=pre,
        post=post,
        counts=sign[pre].astype(np.int64) * count,
        files=[meta_path, edge_path],
        options=options,
        sign_rule="per_neuron",
        rule_counts=rules,
    )


def _locate(source: Path) -> tuple[Path, Path]:
    if source.is_file():
        folder, edges = source.parent, source
    elif source.is_dir():
        folder = source
        edges = find_one(folder, EDGE_PATTERNS, "edge list", required=True)
    else:
        raise ConnectomeError(
            f"{source}: no such file or folder; pass the folder holding banc_888_meta.feather "
            f"and banc_888_edgelist_simple_v3.feather"
        )
    meta = find_one(folder, META_PATTERNS, "meta table", required=True)
    assert edges is not None and meta is not None
    return meta, edges


def _read_meta(path: Path, id_col: str) -> tuple[np.ndarray, dict[str, list]]:
    """Ids of the meta table (file order) and its kept columns, as text."""
    present = columns_of(path)
    require_columns(path, present, [id_col], "The BANC meta table names each neuron there.")
    wanted = [c for c in [*META_COLUMNS.values(), "proofread", TRANSMITTER] if c in present]
    table = read_feather(path, [id_col, *wanted])
    for c in wanted:
        if not pa.types.is_string(table.schema.field(c).type):
            i = table.schema.get_field_index(c)
            table = table.set_column(i, c, table.column(c).cast(pa.string()))
    listed = id_column(table, id_col, path)
    check_unique_ids(listed, path, id_col)
    out = {
        name: text_column(table, column)
        for name, column in META_COLUMNS.items()
        if column in table.column_names
    }
    if "proofread" in table.column_names:
        out["proofread"] = text_column(table, "proofread")
    out["transmitter"] = (
        text_column(table, TRANSMITTER)
        if TRANSMITTER in table.column_names
        else [None] * listed.size
    )
    return listed, out


def _read_edges(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 pre and post ids and synapse counts of every row of the edge list."""
    parts: dict[str, list[np.ndarray]] = {"pre": [], "post": [], "count": []}
    for first, chunk in iter_chunks(path, ["pre", "post", "count"], hint=HINT):
        parts["pre"].append(id_column(chunk, "pre", path, first_row=first))
        parts["post"].append(id_column(chunk, "post", path, first_row=first))
        parts["count"].append(int_column(chunk, "count", path, kind="count", first_row=first))
    pre, post, count = (np.concatenate(parts[k]) for k in ("pre", "post", "count"))
    return pre, post, count
