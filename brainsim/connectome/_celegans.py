"""Loader ``celegans``: the C. elegans connectomes shipped by the PyPI package ``cect``.

Needs the optional dependency ``cect`` (``pip install 'brainsim-jax[celegans]'``). ``source``
names a dataset as cect does; the loader reads cect's own cached copy of it (the JSON files
in ``cect/cache``, listed in ``provenance.sources``):

- ``Cook2019Herm``: Cook et al. 2019, adult hermaphrodite (reader Cook2019HermReader)
- ``Cook2019Male``: Cook et al. 2019, adult male (Cook2019MaleReader)
- ``Varshney``: Varshney et al. 2011 (VarshneyDataReader)
- ``White_whole``: White et al. 1986, whole animal (White_whole)
- ``WhiteJSH``: White et al. 1986, JSH series (DurbinJSHDataReader)
- ``WhiteN2U``: White et al. 1986, N2U series (DurbinN2UDataReader)
- ``Witvliet1`` to ``Witvliet8``: Witvliet et al. 2021, eight animals from L1 to adult
  (WitvlietDataReader1-8; nerve ring only, so e.g. AVA's ventral-cord outputs are absent)

(cect's Cook2020 pharynx data is left out: its weights are fractional section counts.)
The counts are the dataset's weights, which cect documents per reader; for Cook et al.
2019 they are the number of serial EM sections showing the connection. They must be whole
numbers; a fractional or negative weight raises, naming the dataset and the pair.

Neurons: C. elegans neurons have names, not numbers. The neuron table holds the cells
sorted by name (Python string order) with ids 0..N-1 in that order, the name in
``cell_type``, ``class`` (``neuron``, ``muscle`` or ``other``, from cect's cell lists),
``transmitter`` and ``sign``. With ``cells="neurons"`` (default) only neurons are kept:
dropped cells and the chemical and electrical connections that touch them are counted
(``non_neuron_cells_dropped``, ``non_neuron_connections_dropped``,
``non_neuron_gap_junctions_dropped``). ``cells="all"`` keeps muscles and other cells.

Chemical synapses: cect's ``Generic_CS`` matrix, one connection per nonzero entry.
Electrical synapses: cect's ``Generic_GJ`` matrix goes, unsigned, into the connectome's
``gap_junctions`` table (``pre``, ``post`` int32 neuron indices, ``count`` int32), one row
per nonzero entry. cect stores gap junctions as a symmetric matrix, so a junction between
A and B appears twice, as A->B and as B->A, with the same count.

Signs (``provenance.sign_rule = "per_neuron"``): each neuron's transmitters come from the
Wang et al. 2024 transmitter atlas as cect packages it (``transmitters="wang2024"``,
default: a neuron expresses a transmitter when its row of cect's Wang2024Herm matrix for
that transmitter, or Wang2024Male for ``Cook2019Male``, is nonzero), or from a table
(``transmitters=PATH``: CSV/Parquet with columns ``name`` and ``transmitter``; several
transmitters of one neuron joined by ``+``). ``transmitter`` lists them joined by ``+``.
Only the fast classical transmitters decide the sign (acetylcholine, glutamate, GABA):
a neuron is inhibitory when it has at least one and all of them are in ``inhibitory``
(default GABA and glutamate, the Shiu et al. rule used throughout brainsim; glutamate acts
through both excitatory and inhibitory receptors in the worm, so ``inhibitory=("GABA",)``
is a common alternative). Otherwise it is excitatory, which covers two counted cases:

- ``mixed_transmitter_neurons``: neurons with outputs that release both an excitatory and
  an inhibitory fast transmitter (e.g. SMD: acetylcholine and GABA).
- ``neurons_without_fast_transmitter``: neurons with outputs and no fast transmitter known
  (monoaminergic only, or not in the atlas).

``sign`` is 0 for a cell without outgoing chemical synapses. ``self_connections_kept``
counts cells with a chemical synapse onto themselves (kept).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._tables import finish, neuron_table, read_transmitter_table, require_file

# dataset name -> (cect reader module, cect reader of the Wang et al. 2024 transmitter atlas)
_HERM_NT, _MALE_NT = "Wang2024HermReader", "Wang2024MaleReader"
DATASETS: dict[str, tuple[str, str]] = {
    "Cook2019Herm": ("Cook2019HermReader", _HERM_NT),
    "Cook2019Male": ("Cook2019MaleReader", _MALE_NT),
    "Varshney": ("VarshneyDataReader", _HERM_NT),
    "White_whole": ("White_whole", _HERM_NT),
    "WhiteJSH": ("DurbinJSHDataReader", _HERM_NT),
    "WhiteN2U": ("DurbinN2UDataReader", _HERM_NT),
    **{f"Witvliet{i}": (f"WitvlietDataReader{i}", _HERM_NT) for i in range(1, 9)},
}

CHEMICAL, ELECTRICAL = "Generic_CS", "Generic_GJ"
FAST_TRANSMITTERS = {
    "ACETYLCHOLINE": "Acetylcholine",
    "ACH": "Acetylcholine",
    "GLUTAMATE": "Glutamate",
    "GLU": "Glutamate",
    "GLUT": "Glutamate",
    "GABA": "GABA",
}
# Order in which a neuron's transmitters are listed: fast ones first, as cect names them.
_NT_ORDER = (
    "Acetylcholine",
    "Glutamate",
    "GABA",
    "Betaine",
    "Dopamine",
    "Serotonin",
    "Octopamine",
    "Tyramine",
)
CELL_CHOICES = ("neurons", "all")


def load_celegans(
    source: str,
    *,
    cells: str = "neurons",
    transmitters: str | Path = "wang2024",
    inhibitory: Sequence[str] = ("GABA", "Glutamate"),
) -> Connectome:
    """Load a C. elegans connectome from cect.

    Args:
        source: dataset name, e.g. ``"Cook2019Herm"``, ``"Varshney"``, ``"Witvliet8"``.
        cells: ``"neurons"`` (default) or ``"all"`` (neurons, muscles and other cells).
        transmitters: ``"wang2024"`` (cect's packaging of Wang et al. 2024) or the path of
            a table with columns ``name`` and ``transmitter``.
        inhibitory: fast transmitters whose synapses are inhibitory.
    """
    if source not in DATASETS:
        raise ConnectomeError(
            f"unknown C. elegans dataset {source!r}; known: {', '.join(DATASETS)}"
        )
    if cells not in CELL_CHOICES:
        raise ConnectomeError(f"cells={cells!r}; use 'neurons' or 'all'")
    inhibitory_set = _fast_names(inhibitory, "inhibitory")
    reader, nt_reader = DATASETS[source]
    cect_cells = import_cect("cect.Cells")
    data, data_file = _cect_dataset(reader)
    rules: dict[str, int] = {}

    nodes = [str(n) for n in data.nodes]
    chem = _weights(data.connections.get(CHEMICAL), len(nodes), source, CHEMICAL, nodes)
    gap = _weights(data.connections.get(ELECTRICAL), len(nodes), source, ELECTRICAL, nodes)
    keep = np.array(
        [cells == "all" or bool(cect_cells.is_any_neuron(n)) for n in nodes], dtype=bool
    )
    rules["non_neuron_cells_dropped"] = int((~keep).sum())
    names = sorted(n for n, k in zip(nodes, keep, strict=True) if k)
    new_index = {name: i for i, name in enumerate(names)}
    remap = np.array([new_index.get(n, -1) for n in nodes], dtype=np.int64)

    pre, post, count, rules["non_neuron_connections_dropped"] = _edges(chem, remap)
    g_pre, g_post, g_count, rules["non_neuron_gap_junctions_dropped"] = _edges(gap, remap)
    order = np.lexsort((g_post, g_pre))
    gap_junctions = pa.table(
        {
            "pre": pa.array(g_pre[order], pa.int32()),
            "post": pa.array(g_post[order], pa.int32()),
            "count": pa.array(g_count[order], pa.int32()),
        }
    )

    if str(transmitters) == "wang2024":
        by_name, nt_file = _wang2024(nt_reader)
    else:
        nt_file = require_file(Path(transmitters), "transmitter table")
        by_name = _transmitter_file(nt_file)
    has_output = np.bincount(pre, minlength=len(names)) > 0
    sign = _signs(names, by_name, has_output, inhibitory_set, rules)

    neurons = neuron_table(
        np.arange(len(names), dtype=np.int64),
        {
            "cell_type": pa.array(names, pa.string()),
            "class": pa.array([_cell_class(cect_cells, n) for n in names], pa.string()),
            "transmitter": pa.array(
                ["+".join(by_name[n]) if by_name.get(n) else None for n in names], pa.string()
            ),
            "sign": pa.array(np.where(has_output, sign, 0), pa.int8()),
        },
    )
    options = {
        "dataset": source,
        "cells": cells,
        "transmitters": "wang2024" if str(transmitters) == "wang2024" else Path(nt_file).name,
        "inhibitory": sorted(inhibitory_set),
    }
    return finish(
        fmt="celegans",
        neurons=neurons,
        pre=pre,
        post=post,
        counts=sign[pre].astype(np.int64) * count,
        files=[data_file, nt_file],
        options=options,
        sign_rule="per_neuron",
        rule_counts=rules,
        gap_junctions=gap_junctions,
    )


def import_cect(module: str, error=ConnectomeError, needed_by: str = "format 'celegans'"):
    """A module of the optional package cect, or ``error`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise error(
            f"{needed_by} needs the package cect: pip install 'brainsim-jax[celegans]' "
            f"(or pip install cect); import failed: {e}"
        ) from e


def _cect_dataset(reader: str):
    """cect's cached dataset for ``reader`` and the path of the file it was read from."""
    module = import_cect(f"cect.readers.{reader}")
    cache_file = Path(import_cect("cect.ConnectomeDataset").get_cache_filename(reader))
    require_file(cache_file, f"cect's cached copy of {reader}", "Reinstall cect.")
    return module.get_instance(from_cache=True), cache_file


def _weights(matrix, n: int, source: str, what: str, nodes: list[str]) -> np.ndarray:
    """int64 [n, n] weights of a cect matrix (zeros if absent); fractions or negatives raise."""
    if matrix is None:
        return np.zeros((n, n), dtype=np.int64)
    m = np.asarray(matrix, dtype=np.float64)
    bad = ~np.isfinite(m) | (m < 0) | (m != np.round(m))
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise ConnectomeError(
            f"cect dataset {source!r}, {what}: weight {m[i, j]!r} from {nodes[i]} to "
            f"{nodes[j]} is not a whole number >= 0; brainsim needs synapse counts, pick "
            f"another dataset"
        )
    return m.astype(np.int64)


def _edges(matrix: np.ndarray, remap: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nonzero entries between kept cells as (pre, post, count), and how many were dropped."""
    i, j = np.nonzero(matrix)
    kept = (remap[i] >= 0) & (remap[j] >= 0)
    return remap[i[kept]], remap[j[kept]], matrix[i[kept], j[kept]], int((~kept).sum())


def _ordered(nts) -> list[str]:
    rank = {t: k for k, t in enumerate(_NT_ORDER)}
    return sorted(set(nts), key=lambda t: (rank.get(t, len(rank)), t))


def _wang2024(reader: str) -> tuple[dict[str, list[str]], Path]:
    """Transmitters per cell name from cect's Wang et al. 2024 matrices (one per transmitter)."""
    data, cache_file = _cect_dataset(reader)
    found: dict[str, set[str]] = {}
    for nt, matrix in data.connections.items():
        rows = np.flatnonzero(np.asarray(matrix).any(axis=1))
        for r in rows:
            found.setdefault(str(data.nodes[r]), set()).add(str(nt))
    return {name: _ordered(nts) for name, nts in found.items()}, cache_file


def _transmitter_file(path: Path) -> dict[str, list[str]]:
    """Transmitters per cell name from a ``name``/``transmitter`` table ('+' joins several)."""
    _, names, nts = read_transmitter_table(path, ("name",), key_kind="type")
    out: dict[str, list[str]] = {}
    for name, nt in zip(names, nts, strict=True):
        parts = [p.strip() for p in (nt or "").split("+") if p.strip()]
        out[name] = _ordered(FAST_TRANSMITTERS.get(p.upper(), p) for p in parts)
    return out


def _fast_names(names: Sequence[str], option: str) -> set[str]:
    if isinstance(names, str):
        names = (names,)
    out = set()
    for name in names:
        key = str(name).strip().upper()
        if key not in FAST_TRANSMITTERS:
            raise ConnectomeError(
                f"{option}={tuple(names)!r}: {name!r} is not a fast transmitter; choose among "
                f"Acetylcholine, Glutamate, GABA"
            )
        out.add(FAST_TRANSMITTERS[key])
    return out


def _signs(
    names: list[str],
    by_name: dict[str, list[str]],
    has_output: np.ndarray,
    inhibitory: set[str],
    rules: dict[str, int],
) -> np.ndarray:
    """+1/-1 per neuron from its fast transmitters; mixed or unknown neurons are excitatory."""
    sign = np.ones(len(names), dtype=np.int8)
    mixed = unknown = 0
    for i, name in enumerate(names):
        listed = (t.upper() for t in by_name.get(name, []))
        fast = {FAST_TRANSMITTERS[t] for t in listed if t in FAST_TRANSMITTERS}
        if not fast:
            unknown += bool(has_output[i])
        elif fast <= inhibitory:
            sign[i] = -1
        elif fast & inhibitory:
            mixed += bool(has_output[i])
    rules["mixed_transmitter_neurons"] = mixed
    rules["neurons_without_fast_transmitter"] = unknown
    return sign


def _cell_class(cells_module, name: str) -> str:
    if cells_module.is_any_neuron(name):
        return "neuron"
    if cells_module.is_known_muscle(name):
        return "muscle"
    return "other"
