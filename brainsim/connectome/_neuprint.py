"""Loader ``neuprint``: neuPrint exports of the hemibrain (and of other neuPrint datasets).

``source`` is the folder of the export (or the path of either file in it):

``traced-neurons.csv``
    One row per traced neuron: ``bodyId`` (int64) and, optionally, ``type`` and ``instance``.
``traced-total-connections.csv``
    One row per connected pair: ``bodyId_pre``, ``bodyId_post`` and ``weight`` (synapses).

neuPrint exports carry no transmitters, and brainsim needs a sign for every synapse, so
``transmitters=PATH`` is required: a CSV or Parquet table with a key column, ``bodyId``
(one row per neuron) or else ``type`` (one row per cell type), and a transmitter column,
``transmitter``, ``nt_type`` or ``predicted_nt`` (e.g. acetylcholine, gaba, glutamate,
dopamine; case does not matter). Without it the loader raises and says so.

Signs: per neuron (``provenance.sign_rule = "per_neuron"``), as in Shiu et al. 2024: a
neuron whose transmitter is GABA or glutamate is inhibitory, any other excitatory, and all
its connections carry that sign.

Neuron table: the neurons of ``traced-neurons.csv`` sorted by ``bodyId`` (row i = internal
index i), with ``id``, ``cell_type`` (from ``type``), ``instance``, ``transmitter`` and
``sign`` (int8; 0 for a neuron without outgoing connections).

Rules (counted in ``provenance.counts``, or an error naming file, row or id):

- ``neurons_without_transmitter``: neurons with output synapses that the transmitter table
  does not cover are treated as excitatory; ``missing_transmitter="error"`` raises instead.
- ``transmitter_rows_unused``: transmitter rows whose body id or type matches no neuron.
- a connection whose body id is not in ``traced-neurons.csv`` raises (naming row and id);
  ``allow_unknown_ids=True`` adds it to the neuron table instead (``unknown_ids_added``).
- ``pair_rows_merged``: rows repeating a (pre, post) pair are summed;
  ``duplicates="error"`` raises instead, naming both rows.
- ``zero_count_rows_dropped``: rows with weight 0 are left out.
- ``self_connections_kept``: neurons that synapse onto themselves; kept.

A negative, fractional, empty or NaN weight, an id that is not an integer, a missing
column or a body id listed twice raises a :class:`ConnectomeError` naming the file and the
1-based data row.
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
    columns_of,
    finish,
    int_column,
    neuron_table,
    neuron_transmitters,
    read_table,
    require_file,
    text_column,
    union_ids,
)

NEURONS_FILE = "traced-neurons.csv"
CONNECTIONS_FILE = "traced-total-connections.csv"


def load_neuprint(
    source: str | Path,
    *,
    transmitters: str | Path | None = None,
    missing_transmitter: str = "excitatory",
    allow_unknown_ids: bool = False,
    duplicates: str = "sum",
) -> Connectome:
    """Load a neuPrint export (``traced-neurons.csv``, ``traced-total-connections.csv``).

    Args:
        source: the export folder, or the path of either file.
        transmitters: CSV/Parquet table keyed by ``bodyId`` or ``type`` with a
            ``transmitter`` (or ``nt_type``, ``predicted_nt``) column. Required.
        missing_transmitter: ``"excitatory"`` (count neurons lacking one) or ``"error"``.
        allow_unknown_ids: add connection body ids missing from the neuron file.
        duplicates: ``"sum"`` repeated (pre, post) rows, or ``"error"``.
    """
    if transmitters is None:
        raise ConnectomeError(
            "format 'neuprint': neuPrint exports carry no transmitters, and every synapse "
            "needs a sign. Pass transmitters=PATH: a CSV with a 'bodyId' (or 'type') column "
            "and a 'transmitter' (or 'nt_type') column, e.g. from the hemibrain transmitter "
            "predictions"
        )
    check_duplicates_option(duplicates)
    folder = _locate(Path(source))
    hint = f"A neuPrint export folder holds {NEURONS_FILE} and {CONNECTIONS_FILE}."
    neurons_path = require_file(folder / NEURONS_FILE, "neuron file", hint)
    conns_path = require_file(folder / CONNECTIONS_FILE, "connection file", hint)
    nt_path = require_file(Path(transmitters), "transmitter table")
    rules: dict[str, int] = {}

    ntable = read_table(
        neurons_path, ["bodyId"], optional=["type", "instance"], strings=["type", "instance"]
    )
    listed = int_column(ntable, "bodyId", neurons_path, kind="id")
    check_unique_ids(listed, neurons_path, "bodyId")

    ctable = read_table(conns_path, ["bodyId_pre", "bodyId_post", "weight"])
    pre_id = int_column(ctable, "bodyId_pre", conns_path, kind="id")
    post_id = int_column(ctable, "bodyId_post", conns_path, kind="id")
    weight = int_column(ctable, "weight", conns_path, kind="count")
    if duplicates == "error":
        check_no_duplicate_rows(
            [pre_id, post_id], conns_path, "pair", ["bodyId_pre", "bodyId_post"]
        )
    ids = union_ids(
        listed,
        pre_id,
        post_id,
        columns=("bodyId_pre", "bodyId_post"),
        conn_path=conns_path,
        neurons_path=neurons_path,
        allow_unknown=allow_unknown_ids,
        rules=rules,
    )
    keep = weight != 0
    rules["zero_count_rows_dropped"] = int((~keep).sum())
    pre = np.searchsorted(ids, pre_id[keep])
    post = np.searchsorted(ids, post_id[keep])
    weight = weight[keep]
    has_output = np.bincount(pre, minlength=ids.size) > 0

    columns: dict = {}
    for name, column in (("cell_type", "type"), ("instance", "instance")):
        if column in ntable.column_names:
            columns[name] = align(text_column(ntable, column), listed, ids)
    key_kind = "id"
    neuron_keys: list = ids.tolist()
    if "bodyId" not in columns_of(nt_path):
        key_kind = "type"
        if "cell_type" not in columns:
            raise ConnectomeError(
                f"{nt_path}: the transmitter table is keyed by 'type', but {neurons_path} "
                f"has no 'type' column; key the table by 'bodyId' instead"
            )
        neuron_keys = columns["cell_type"]
    transmitter, sign = neuron_transmitters(
        nt_path,
        neuron_keys,
        ("bodyId", "type"),
        key_kind=key_kind,
        has_output=has_output,
        ids=ids,
        missing=missing_transmitter,
        rules=rules,
    )
    signed = sign[pre].astype(np.int64) * weight
    columns = {name: pa.array(v, pa.string()) for name, v in columns.items()}
    columns["transmitter"] = pa.array(transmitter, pa.string())
    columns["sign"] = pa.array(np.where(has_output, sign, 0), pa.int8())
    options = {
        "transmitters": nt_path.name,
        "missing_transmitter": missing_transmitter,
        "allow_unknown_ids": allow_unknown_ids,
        "duplicates": duplicates,
    }
    return finish(
        fmt="neuprint",
        neurons=neuron_table(ids, columns),
        pre=pre,
        post=post,
        counts=signed,
        files=[neurons_path, conns_path, nt_path],
        options=options,
        sign_rule="per_neuron",
        rule_counts=rules,
    )


def _locate(source: Path) -> Path:
    if source.is_file():
        return source.parent
    if not source.is_dir():
        raise ConnectomeError(
            f"{source}: no such folder; pass the neuPrint export folder holding "
            f"{NEURONS_FILE} and {CONNECTIONS_FILE}"
        )
    return source
