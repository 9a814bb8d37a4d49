"""The measured C. elegans signal-propagation atlas (Randi et al., Nature 2023) as a table.

Needs the optional dependency ``cect`` (``pip install 'brainsim-jax[celegans]'``), which
ships the atlas as dataset ``Randi2023`` (reader ``cect.readers.WormNeuroAtlasFuncReader``).
:func:`read_atlas` reads cect's cached copy of it, ``cect/cache/WormNeuroAtlasFuncReader.json``
(``Atlas.source_file``): 181 neuron names (``nodes``) and one 181 x 181 matrix,
``connections["Functional"]``.

What an entry is: the mean post-stimulus calcium response amplitude (dF/F) of one neuron
after two-photon optogenetic stimulation of another, for the wild-type strain, kept by cect
when the pair's q (false discovery rate) is below ``DEFAULT_MAX_Q`` = 0.05 and clipped by
cect to +-10 (no entry reaches the bound). 0 means not significant, not measured, or a self
pair; 1,150 entries are nonzero. cect keeps only the threshold, not each pair's q, so the
table's ``q_max`` column is 0.05 on every row: a pair's q is below it, by how much is not
known here.

Axes (read from cect's source, and tested): the reader appends
``ConnectionInfo(pre, post, dff[post, pre])`` for every stimulated neuron ``pre`` and
responder ``post``, and ``ConnectomeDataset.add_connection_info`` stores a connection at
``matrix[nodes.index(pre), nodes.index(post)]``. So **row = stimulated neuron, column =
responder**: ``matrix[i, j]`` is neuron j's response to stimulating neuron i (the
WormNeuroAtlas matrix itself is the transpose, indexed [responder, stimulated]). The
stimulated neurons are the rows with at least one nonzero entry (158 of the 181).

Table (``Atlas.table``, one row per nonzero entry, sorted by stimulated then responder
name): ``stimulated``, ``responder`` (str, the atlas's names), ``stimulated_id``,
``responder_id`` (int64 ids of those neurons in the connectome passed as ``conn``; -1 when
``conn`` is None), ``amplitude`` (float64, dF/F), ``q_max`` (float64, 0.05).

Names. A connectome's neurons are matched to the atlas by the connectome's ``cell_type``
column (the cect name, see ``brainsim.connectome._celegans``). cect's anatomical datasets
(Cook2019Herm/Male, Varshney, White*, Witvliet1-8) spell every atlas neuron as the atlas does;
where they lack one, the neuron is simply not in the reconstruction (the 19 pharyngeal
neurons in Varshney, WhiteJSH/N2U and Witvliet1-8; ventral-cord and posterior neurons such as
AS1, DA1, VB1, SABD in Witvliet1-8, whose series cover the nerve ring; ADAR and BAGR in
Cook2019Male). Those have no equivalent. :data:`NAME_MAP` lists the spellings with a known
equivalent that other sources use; an atlas name absent from the connectome is looked up
there, and each one found that way is counted (``names_mapped``):

- ``AWCL``/``AWCR``: WormNeuroAtlas names these two by function, AWCOFF and AWCON, and cect
  renames AWCOFF to AWCL and AWCON to AWCR (``cect.readers.WormNeuroAtlasReader.
  get_all_cells``); a connectome that uses AWCOFF/AWCON is matched on those. Which side is ON
  varies from animal to animal, so matching the atlas's AWCL/AWCR to an anatomical
  connectome's left/right AWCL/AWCR by name (as cect does) is an assumption; the neurons so
  matched are counted (``awc_on_off_read_as_left_right``).
- zero-padded ventral-cord numbers (``AS01`` for ``AS1``, ``DB01``, ``VA01``, ...), as in
  the Varshney and Cook edge lists that cect reads.

Counted rules (``Atlas.counts``): ``atlas_pairs`` (nonzero entries), ``atlas_neurons``
(nodes), ``stimulated_neurons``, ``names_mapped``, ``awc_on_off_read_as_left_right``,
``neurons_not_in_connectome`` (atlas neurons with no match in ``conn``) and
``pairs_dropped_not_in_connectome`` (their pairs, dropped from the table); the last three
are 0 without ``conn``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.connectome import Connectome
from brainsim.connectome._celegans import import_cect

# atlas source name -> (cect reader module, matrix key)
SOURCES: dict[str, tuple[str, str]] = {"Randi2023": ("WormNeuroAtlasFuncReader", "Functional")}
Q_MAX = 0.05  # cect's DEFAULT_MAX_Q for Randi2023

# the atlas's ventral-cord neurons, which some sources write zero-padded (DB01)
_VENTRAL_CORD = ("AS1", "DA1", "DB1", "DB2", "DD1", "VA1", "VB1", "VB2", "VD1")
# atlas name -> other spellings of the same neuron, tried in order when the name is absent
NAME_MAP: dict[str, tuple[str, ...]] = {
    "AWCL": ("AWCOFF",),
    "AWCR": ("AWCON",),
    **{n: (n[:-1] + "0" + n[-1],) for n in _VENTRAL_CORD},
}
_AWC_SIDES = ("AWCL", "AWCR")


class AtlasError(ValueError):
    """Bad atlas or comparison input. The message names the file, column or neuron."""


@dataclasses.dataclass(frozen=True)
class Atlas:
    """One signal-propagation atlas: the significant pairs and how they were read.

    Attributes:
        table: pyarrow table, one row per significant pair (columns in the module docstring).
        stimulated: sorted names of the atlas's neurons with at least one significant
            response (all of them, also those whose pairs ``conn`` drops).
        counts: the counted rules (module docstring).
        source_file: the cect cache file the atlas was read from.
        source: the atlas's name, e.g. ``"Randi2023"``.
    """

    table: pa.Table
    stimulated: tuple[str, ...]
    counts: dict[str, int]
    source_file: Path
    source: str = "Randi2023"


def read_atlas(conn: Connectome | None = None, source: str = "Randi2023") -> Atlas:
    """Read the atlas ``source``; with ``conn``, give each pair the connectome's neuron ids.

    Args:
        conn: a C. elegans connectome whose ``cell_type`` column holds the neuron names
            (``brainsim.connectome.load("Cook2019Herm", "celegans")``); pairs of atlas
            neurons it lacks are dropped and counted. None: ids are -1, nothing is dropped.
        source: ``"Randi2023"``.
    """
    if source not in SOURCES:
        raise AtlasError(f"unknown atlas {source!r}; known: {', '.join(SOURCES)}")
    nodes, matrix, source_file = _read_cect(source)
    n = len(nodes)
    if matrix.shape != (n, n):
        raise AtlasError(
            f"{source_file}: matrix {SOURCES[source][1]!r} has shape {matrix.shape}, "
            f"expected ({n}, {n}) for its {n} nodes"
        )
    if not np.isfinite(matrix).all():
        i, j = (int(v[0]) for v in np.nonzero(~np.isfinite(matrix)))
        raise AtlasError(f"{source_file}: entry {nodes[i]} -> {nodes[j]} is {matrix[i, j]!r}")
    np.fill_diagonal(matrix, 0.0)  # self pairs: cect writes 0 there already; never a pair
    rows, cols = np.nonzero(matrix)
    counts = {
        "atlas_pairs": int(rows.size),
        "atlas_neurons": n,
        "stimulated_neurons": int(np.unique(rows).size),
        "names_mapped": 0,
        "awc_on_off_read_as_left_right": 0,
        "neurons_not_in_connectome": 0,
        "pairs_dropped_not_in_connectome": 0,
    }
    ids = np.full(n, -1, dtype=np.int64)
    if conn is not None:
        ids = _connectome_ids(conn, nodes, counts)
        missing = ids < 0
        counts["neurons_not_in_connectome"] = int(missing.sum())
        keep = ~missing[rows] & ~missing[cols]
        counts["pairs_dropped_not_in_connectome"] = int((~keep).sum())
        rows, cols = rows[keep], cols[keep]
    else:
        counts["awc_on_off_read_as_left_right"] = sum(a in nodes for a in _AWC_SIDES)
    names = np.asarray(nodes, dtype=object)
    order = np.lexsort((names[cols], names[rows]))
    rows, cols = rows[order], cols[order]
    table = pa.table(
        {
            "stimulated": pa.array(names[rows].tolist(), pa.string()),
            "responder": pa.array(names[cols].tolist(), pa.string()),
            "stimulated_id": pa.array(ids[rows], pa.int64()),
            "responder_id": pa.array(ids[cols], pa.int64()),
            "amplitude": pa.array(matrix[rows, cols], pa.float64()),
            "q_max": pa.array(np.full(rows.size, Q_MAX), pa.float64()),
        }
    )
    stimulated = tuple(sorted({nodes[i] for i in np.flatnonzero(matrix.any(axis=1))}))
    return Atlas(table, stimulated, counts, source_file, source)


def resolve_names(
    atlas_names, available, counts: dict[str, int], *, where: str
) -> dict[str, str | None]:
    """Each atlas name -> the name it has among ``available`` (itself, else its first
    :data:`NAME_MAP` spelling there), or None; adds to ``names_mapped`` and
    ``awc_on_off_read_as_left_right`` in ``counts``."""
    available = set(available)
    out: dict[str, str | None] = {}
    for name in atlas_names:
        if name in available:
            out[name] = name
            counts["awc_on_off_read_as_left_right"] += name in _AWC_SIDES
            continue
        alias = next((a for a in NAME_MAP.get(name, ()) if a in available), None)
        if alias is not None:
            taken = [k for k, v in out.items() if v == alias]
            if taken:
                raise AtlasError(f"{where}: {alias} would stand for both {taken[0]} and {name}")
            counts["names_mapped"] += 1
        out[name] = alias
    return out


def _connectome_ids(conn: Connectome, nodes: list[str], counts: dict[str, int]) -> np.ndarray:
    """int64 connectome id of each atlas node (-1 where the connectome lacks it)."""
    cols = conn.neurons.column_names
    if "cell_type" not in cols:
        raise AtlasError(
            f"the connectome ({conn.provenance.format}) has no 'cell_type' column to match "
            f"atlas names on; its columns: {', '.join(cols)}"
        )
    types = conn.neurons.column("cell_type").to_pylist()
    conn_ids = conn.neurons.column("id").to_numpy()
    by_name: dict[str, int] = {}
    for t, i in zip(types, conn_ids, strict=True):
        if t is None:
            continue
        if t in by_name:
            raise AtlasError(
                f"the connectome ({conn.provenance.format}) names two neurons {t!r} (ids "
                f"{by_name[t]} and {int(i)}); atlas names must pick out one neuron each"
            )
        by_name[t] = int(i)
    where = f"connectome ({conn.provenance.format})"
    resolved = resolve_names(nodes, by_name, counts, where=where)
    return np.array([by_name[v] if v is not None else -1 for v in resolved.values()], np.int64)


def _import(module: str):
    return import_cect(module, AtlasError, "the C. elegans atlas")


def _read_cect(source: str) -> tuple[list[str], np.ndarray, Path]:
    """Nodes, float64 matrix (a copy) and cache file of cect's cached atlas ``source``."""
    reader, key = SOURCES[source]
    module = _import(f"cect.readers.{reader}")
    cache_file = Path(_import("cect.ConnectomeDataset").get_cache_filename(reader))
    if not cache_file.is_file():
        raise AtlasError(f"{cache_file}: cect's cached copy of {reader} not found. Reinstall cect.")
    data = module.get_instance(from_cache=True)
    if key not in data.connections:
        raise AtlasError(
            f"{cache_file}: no matrix {key!r}; it has {', '.join(data.connections) or 'none'}"
        )
    return [str(x) for x in data.nodes], np.array(data.connections[key], np.float64), cache_file
