"""Loader ``neuprint_flat``: neuPrint "flat connectome" Feather files (MaleCNS v1.0 layout).

``source`` is the folder of the download (or the path of its weights file, which then picks
that one among several). The files are found by name pattern, so the same layout of another
neuPrint dataset (``<dataset>-v<version>`` in the names) loads the same way:

``connectome-weights-<dataset>-v<version>*.feather`` (required; exactly one, or name it)
    One row per connected pair of bodies: ``body_pre``, ``body_post`` (int64 body ids) and
    ``weight`` (synapses). MaleCNS v1.0: ``connectome-weights-male-cns-v1.0-minconf-0.5
    .feather``, 1,051,241,946 bytes, 151,856,684 rows of every segment, fragments included;
    the release also has ``-traced-only`` and ``-significant-only`` subsets in this layout.
``body-annotations-<dataset>-v<version>*.feather`` (required)
    One row per body: ``bodyId`` and ``superclass`` and, kept where present, ``type``,
    ``instance``, ``class``, ``somaSide``. MaleCNS v1.0: ``body-annotations-male-cns-v1.0-
    minconf-0.5.feather``, 211,577 rows (glia and fragments included).
``body-neurotransmitters-<dataset>-v<version>*.feather`` (required: signs need it)
    One row per body: ``body`` (int64) and the transmitter columns ``consensus_nt``
    (default), ``predicted_nt``, ``celltype_predicted_nt`` (lower-case names: acetylcholine,
    gaba, glutamate, histamine, dopamine, octopamine, serotonin, or ``unclear``).

Sources for these facts (names, columns, sizes, row counts): the Janelia download page
https://male-cns.janelia.org/download/ (bucket ``gs://flyem-male-cns/v1.0/connectome-data/
flat-connectome/``) as inventoried by public projects that load it; brainsim found no MANC or
hemibrain release in this layout (MANC v1.0 is published as a neuPrint bulk export and
traced-adjacency CSVs in ``gs://flyem-manc-exports/v1.0``, the hemibrain as the CSVs that
the ``neuprint`` loader reads), so those are untested here.

Neurons: the annotation rows with a ``superclass`` (166,700 for MaleCNS v1.0, the rule of
the authors' counting notebook, which further leaves out ``tbc``; here ``tbc`` neurons are
kept), sorted by ``bodyId`` (row i = internal index i). Neuron table: ``id``, ``cell_type``
(from ``type``), ``instance``, ``class``, ``super_class`` (from ``superclass``), ``side``
(from ``somaSide``), ``transmitter`` and ``sign`` (int8; 0 for a neuron without outputs).

Signs: per neuron (``provenance.sign_rule = "per_neuron"``), as in Shiu et al. 2024: a
neuron whose transmitter (``transmitter_column``) is GABA or glutamate is inhibitory, any
other excitatory; ``unclear`` or no row counts as no transmitter.

Rules (counted in ``provenance.counts``, or an error naming file, row or id):

- ``rows_with_non_neuron_dropped``, ``synapses_with_non_neuron_dropped``: weight rows whose
  pre- or postsynaptic body is not a neuron (no annotation row with a superclass) are left
  out; ``non_neurons="error"`` raises instead, naming the row and the body.
- ``annotation_rows_without_superclass``: annotation rows that are not neurons.
- ``zero_count_rows_dropped``: kept rows with weight 0.
- ``pair_rows_merged``: kept rows repeating a (pre, post) pair are summed;
  ``duplicates="error"`` raises instead, naming both rows.
- ``neurons_without_transmitter``: neurons with outputs and no transmitter are excitatory;
  ``missing_transmitter="error"`` raises instead.
- ``histamine_neurons_excitatory``: neurons with outputs whose transmitter is histamine
  (excitatory under the Shiu rule).
- ``transmitter_rows_unused``: transmitter rows whose body is not a neuron;
  ``transmitter_rows_repeated``: rows repeating a body with the same transmitter (a body
  given two different transmitters raises, naming both rows).
- ``self_connections_kept``.

A negative, fractional, empty or NaN weight, an id that is not an integer, a missing
column or a body id listed twice in the annotations raises a :class:`ConnectomeError`
naming the file and the 1-based data row. The weights file is streamed in chunks
(:mod:`brainsim.connectome._feather`); only the rows between neurons are kept, as int32.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._feather import id_column, iter_chunks
from brainsim.connectome._tables import (
    check_duplicates_option,
    check_unique_ids,
    find_one,
    finish,
    first_duplicate_rows,
    int_column,
    neuron_table,
    read_table,
    text_column,
    transmitter_signs,
    where,
)

WEIGHT_PATTERNS = ("connectome-weights-*.feather",)
ANNOTATION_PATTERNS = ("body-annotations-*.feather",)
TRANSMITTER_PATTERNS = ("body-neurotransmitters-*.feather",)
TRANSMITTER_COLUMNS = ("consensus_nt", "predicted_nt", "celltype_predicted_nt")
NON_NEURON_RULES = ("drop", "error")
# neuron table column -> annotation column
ANNOTATION_COLUMNS = {
    "cell_type": "type",
    "instance": "instance",
    "class": "class",
    "super_class": "superclass",
    "side": "somaSide",
}
NO_TRANSMITTER = frozenset({"unclear"})
_RELEASE = re.compile(r"connectome-weights-(?P<dataset>.+?)-(?P<version>v\d+(?:\.\d+)*)")
HINT = "A neuPrint flat connectome has body_pre, body_post, weight."


def load_neuprint_flat(
    source: str | Path,
    *,
    transmitter_column: str = "consensus_nt",
    missing_transmitter: str = "excitatory",
    non_neurons: str = "drop",
    duplicates: str = "sum",
) -> Connectome:
    """Load a neuPrint flat connectome (weights, body annotations, body neurotransmitters).

    Args:
        source: the folder, or the path of the weights file.
        transmitter_column: ``"consensus_nt"``, ``"predicted_nt"`` or
            ``"celltype_predicted_nt"`` of the neurotransmitter table.
        missing_transmitter: ``"excitatory"`` (count neurons lacking one) or ``"error"``.
        non_neurons: ``"drop"`` (count) weight rows touching a body that is not a neuron,
            or ``"error"``.
        duplicates: ``"sum"`` repeated (pre, post) rows, or ``"error"``.
    """
    if transmitter_column not in TRANSMITTER_COLUMNS:
        raise ConnectomeError(
            f"transmitter_column={transmitter_column!r}; use one of "
            f"{', '.join(TRANSMITTER_COLUMNS)}"
        )
    if non_neurons not in NON_NEURON_RULES:
        raise ConnectomeError(f"non_neurons={non_neurons!r}; use 'drop' (count them) or 'error'")
    check_duplicates_option(duplicates)
    weights_path, ann_path, nt_path = _locate(Path(source))
    rules: dict[str, int] = {}
    ids, annotations = _read_annotations(ann_path, rules)
    pre, post, weight = _read_weights(weights_path, ann_path, ids, non_neurons, duplicates, rules)
    has_output = np.bincount(pre, minlength=ids.size) > 0
    transmitter = _read_transmitters(nt_path, transmitter_column, ids, rules)
    sign = transmitter_signs(
        transmitter,
        has_output,
        ids,
        missing=missing_transmitter,
        where_from=f"{nt_path} (column {transmitter_column!r})",
        rules=rules,
    )
    columns = {name: pa.array(v, pa.string()) for name, v in annotations.items()}
    columns["transmitter"] = pa.array(transmitter, pa.string())
    columns["sign"] = pa.array(np.where(has_output, sign, 0), pa.int8())
    options: dict = {
        "transmitter_column": transmitter_column,
        "missing_transmitter": missing_transmitter,
        "non_neurons": non_neurons,
        "duplicates": duplicates,
    }
    release = _RELEASE.match(weights_path.name)
    if release:
        options["release"] = f"{release['dataset']}:{release['version']}"
    return finish(
        fmt="neuprint_flat",
        neurons=neuron_table(ids, columns),
        pre=pre,
        post=post,
        counts=sign[pre].astype(np.int64) * weight,
        files=[weights_path, ann_path, nt_path],
        options=options,
        sign_rule="per_neuron",
        rule_counts=rules,
    )


def _locate(source: Path) -> tuple[Path, Path, Path]:
    if source.is_file():
        folder, weights = source.parent, source
    elif source.is_dir():
        folder = source
        weights = find_one(folder, WEIGHT_PATTERNS, "weights file", required=True)
    else:
        raise ConnectomeError(
            f"{source}: no such file or folder; pass the folder holding the flat connectome "
            f"(connectome-weights-*.feather, body-annotations-*.feather, "
            f"body-neurotransmitters-*.feather)"
        )
    ann = find_one(folder, ANNOTATION_PATTERNS, "body annotation table", required=True)
    nt = find_one(folder, TRANSMITTER_PATTERNS, "body neurotransmitter table", required=True)
    assert weights is not None and ann is not None and nt is not None
    return weights, ann, nt


def _read_annotations(path: Path, rules: dict[str, int]) -> tuple[np.ndarray, dict[str, list]]:
    """Sorted neuron ids (rows with a superclass) and their annotation columns."""
    wanted = list(ANNOTATION_COLUMNS.values())
    table = read_table(path, ["bodyId", "superclass"], optional=wanted, strings=wanted)
    body = int_column(table, "bodyId", path, kind="id")
    check_unique_ids(body, path, "bodyId")
    neuron = np.array([s is not None for s in text_column(table, "superclass")], dtype=bool)
    rules["annotation_rows_without_superclass"] = int((~neuron).sum())
    rows = np.flatnonzero(neuron)
    rows = rows[np.argsort(body[rows], kind="stable")]
    out = {}
    for name, column in ANNOTATION_COLUMNS.items():
        if column in table.column_names:
            values = np.array(text_column(table, column), dtype=object)
            out[name] = values[rows].tolist()
    return body[rows], out


def _read_weights(
    path: Path,
    ann_path: Path,
    ids: np.ndarray,
    non_neurons: str,
    duplicates: str,
    rules: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream the weights: int32 (pre, post) indices and weights of the rows between neurons."""
    n = ids.size
    parts: dict[str, list[np.ndarray]] = {"pre": [], "post": [], "w": [], "row": []}
    dropped_rows = dropped_synapses = zero = 0
    for first, chunk in iter_chunks(path, ["body_pre", "body_post", "weight"], hint=HINT):
        pre_id = id_column(chunk, "body_pre", path, first_row=first)
        post_id = id_column(chunk, "body_post", path, first_row=first)
        w = int_column(chunk, "weight", path, kind="count", first_row=first)
        pre = np.minimum(np.searchsorted(ids, pre_id), max(n - 1, 0))
        post = np.minimum(np.searchsorted(ids, post_id), max(n - 1, 0))
        pre_ok = (ids[pre] == pre_id) if n else np.zeros(pre_id.size, bool)
        post_ok = (ids[post] == post_id) if n else np.zeros(post_id.size, bool)
        keep = pre_ok & post_ok
        if non_neurons == "error" and not keep.all():
            row = int(np.flatnonzero(~keep)[0])
            if pre_ok[row]:
                column, value = "body_post", post_id[row]
            else:
                column, value = "body_pre", pre_id[row]
            raise ConnectomeError(
                f"{where(path, first + row)}: {column} {value} is not a neuron (no row with a "
                f"superclass in {ann_path}); load with non_neurons='drop' to leave such rows "
                f"out (counted)"
            )
        dropped_rows += int((~keep).sum())
        dropped_synapses += int(w[~keep].sum())
        nonzero = w[keep] != 0
        zero += int((~nonzero).sum())
        kept = np.flatnonzero(keep)[nonzero]
        if w.size and w.max() > np.iinfo(np.int32).max:
            row = int(np.argmax(w))
            raise ConnectomeError(f"{where(path, first + row)}: weight exceeds int32")
        parts["pre"].append(pre[kept].astype(np.int32))
        parts["post"].append(post[kept].astype(np.int32))
        parts["w"].append(w[kept].astype(np.int32))
        if duplicates == "error":
            parts["row"].append(first + kept)
    rules["rows_with_non_neuron_dropped"] = dropped_rows
    rules["synapses_with_non_neuron_dropped"] = dropped_synapses
    rules["zero_count_rows_dropped"] = zero
    pre, post, w = (np.concatenate(parts[k]).astype(np.int64) for k in ("pre", "post", "w"))
    if duplicates == "error":
        hit = first_duplicate_rows([pre, post])
        if hit is not None:
            file_rows = np.concatenate(parts["row"])
            a, b = sorted(int(file_rows[i]) for i in hit)
            pair = f"body_pre={ids[pre[hit[0]]]}, body_post={ids[post[hit[0]]]}"
            raise ConnectomeError(
                f"{path}: rows {a + 1} and {b + 1} name the same pair ({pair}); remove the "
                f"duplicate, or load with "
                f"duplicates='sum' to add their weights"
            )
    return pre, post, w


def _read_transmitters(
    path: Path, column: str, ids: np.ndarray, rules: dict[str, int]
) -> list[str | None]:
    """Each neuron's transmitter from the body table (None: no row, empty or ``unclear``)."""
    table = read_table(path, ["body", column], strings=[column])
    body = int_column(table, "body", path, kind="id")
    values = np.array(
        [
            None if v is None or v.lower() in NO_TRANSMITTER else v
            for v in text_column(table, column)
        ],
        dtype=object,
    )
    order = np.argsort(body, kind="stable")
    same = np.flatnonzero(body[order][1:] == body[order][:-1])
    differ = [i for i in same if values[order[i]] != values[order[i + 1]]]
    if differ:
        a, b = sorted((int(order[differ[0]]), int(order[differ[0] + 1])))
        raise ConnectomeError(
            f"{path}: body {body[a]} has {column} {values[a]!r} in row {a + 1} and "
            f"{values[b]!r} in row {b + 1}; keep one"
        )
    rules["transmitter_rows_repeated"] = int(same.size)
    first_rows = order[np.r_[True, body[order][1:] != body[order][:-1]]] if body.size else order
    unique_body = body[first_rows]
    pos = np.searchsorted(unique_body, ids) if unique_body.size else np.zeros(ids.size, int)
    pos = np.minimum(pos, max(unique_body.size - 1, 0))
    found = (unique_body[pos] == ids) if unique_body.size else np.zeros(ids.size, bool)
    used = np.zeros(unique_body.size, dtype=bool)
    used[pos[found]] = True
    rules["transmitter_rows_unused"] = int(body.size - same.size - used.sum())
    return [values[first_rows[p]] if f else None for p, f in zip(pos, found, strict=True)]
