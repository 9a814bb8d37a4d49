"""The in-memory connectome: a neuron table plus synapses as CSR sorted by presynaptic neuron.

numpy and pyarrow only; no JAX in this layer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from brainsim._arrow import values
from brainsim.connectome._errors import ConnectomeError

# Transmitters whose synapses are inhibitory under the Shiu et al. 2024 rule; every other
# transmitter (ACh, DA, SER, OCT, ...) counts as excitatory.
INHIBITORY_TRANSMITTERS = frozenset({"GABA", "GLUT", "GLU", "GLUTAMATE"})

SIGN_RULES = ("per_neuron", "per_connection", "given")


def transmitter_sign(nt: str | None) -> int:
    """+1 or -1 for a transmitter name (case-insensitive); None or empty is excitatory."""
    if nt is None:
        return 1
    return -1 if str(nt).strip().upper() in INHIBITORY_TRANSMITTERS else 1


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a connectome came from and which rules were applied while loading it.

    ``counts`` holds every documented rule that changed or skipped input rows, with how often
    it applied (e.g. ``{"pair_rows_merged": 12, "self_connections_kept": 3}``), so that
    nothing is dropped silently.
    """

    format: str
    sources: tuple[str, ...]
    checksum: str
    sign_rule: str
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "sources": list(self.sources),
            "checksum": self.checksum,
            "sign_rule": self.sign_rule,
            "counts": {k: int(v) for k, v in self.counts.items()},
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Provenance:
        return cls(
            format=d["format"],
            sources=tuple(d["sources"]),
            checksum=d["checksum"],
            sign_rule=d["sign_rule"],
            counts=dict(d.get("counts", {})),
            options=dict(d.get("options", {})),
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Connectome:
    """Neurons and chemical synapses of one brain.

    Attributes:
        neurons: pyarrow table, one row per neuron, row i is internal index i. Column ``id``
            (int64 external id, e.g. FlyWire root id) always; where known ``cell_type``,
            ``class``, ``super_class``, ``side``, ``transmitter`` (str) and ``sign`` (int8,
            +1/-1, the sign of the neuron's outputs under the per-neuron rule; 0 for a
            neuron without outgoing connections).
        indptr: int64 [n_neurons + 1]; the synapses of presynaptic neuron i are
            ``indptr[i]:indptr[i+1]``.
        indices: int32 [n_connections]; postsynaptic neuron index of each connection, sorted
            ascending within each row, unique within each row.
        counts: int32 [n_connections]; signed synapse count (sign x number of synapses).
        provenance: sources, checksum, sign rule and the counted loading rules.
        gap_junctions: optional pyarrow table (``pre``, ``post`` int32 indices, ``count``)
            for electrical synapses (C. elegans); not used by the LIF engine.
        n_syn: optional float32 [n_connections]: the mean number of synapses of each
            connection where the source gives averages rather than counts (flyvis's
            type-level connectome, averaged over columns); ``counts`` then holds each
            connection's sign (+1/-1) and a connection's signed size is ``counts x n_syn``.
    """

    neurons: pa.Table
    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray
    provenance: Provenance
    gap_junctions: pa.Table | None = None
    n_syn: np.ndarray | None = None

    def __post_init__(self):
        if "id" not in self.neurons.column_names:
            raise ConnectomeError("neuron table has no 'id' column")
        self.check_csr()
        if self.n_syn is not None:
            n = self.n_syn
            if n.dtype != np.float32 or n.shape != self.indices.shape:
                raise ConnectomeError("n_syn must be float32 with one value per connection")
            if not np.all(np.isfinite(n) & (n > 0)):
                raise ConnectomeError("n_syn must be finite and > 0")
            if np.any(np.abs(self.counts) != 1):
                raise ConnectomeError("with n_syn, counts must hold only signs (+1/-1)")

    def signed_size(self) -> np.ndarray:
        """float64 [n_connections]: each connection's signed number of synapses (the
        signed count, or sign x mean count where :attr:`n_syn` is given)."""
        if self.n_syn is None:
            return self.counts.astype(np.float64)
        return self.counts * self.n_syn.astype(np.float64)

    def check_csr(self) -> None:
        """Raise :class:`ConnectomeError` unless the CSR arrays hold the invariants above.

        Checked on construction and again where a :class:`~brainsim.sim.Network` is built
        (the arrays are mutable): the kernels index with them unchecked, so an index out of
        range would read or write outside their buffers.
        """
        check_csr(self.indptr, self.indices, self.counts, self.neurons.num_rows)

    # ----------------------------------------------------------------- sizes and counts
    @property
    def n_neurons(self) -> int:
        return self.neurons.num_rows

    @property
    def n_connections(self) -> int:
        """Unique directed (pre, post) pairs."""
        return int(self.indices.shape[0])

    @property
    def n_synapses(self) -> int:
        """Sum of the synapse counts (of the mean counts, rounded, where :attr:`n_syn`)."""
        if self.n_syn is not None:
            return int(round(float(self.n_syn.astype(np.float64).sum())))
        # (in blocks: |count| as int64 for the whole array at once is a 120 MB temporary for
        # the whole brain, whose page faults cost 0.2 s)
        c, step = self.counts, 1 << 20
        blocks = range(0, c.size, step)
        return sum(int(np.abs(c[i : i + step], dtype=np.int64).sum()) for i in blocks)

    @property
    def n_excitatory(self) -> int:
        return int((self.counts > 0).sum())

    @property
    def n_inhibitory(self) -> int:
        return int((self.counts < 0).sum())

    @property
    def ids(self) -> np.ndarray:
        return values(self.neurons.column("id"))

    def out_degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def in_degree(self) -> np.ndarray:
        return np.bincount(self.indices, minlength=self.n_neurons)

    def pre_indices(self) -> np.ndarray:
        """int32 [n_connections]: presynaptic index of each connection (CSR row expanded)."""
        return np.repeat(np.arange(self.n_neurons, dtype=np.int32), self.out_degree())

    @property
    def n_gap_junctions(self) -> int:
        """Unordered neuron pairs joined by gap junctions (the table lists each twice)."""
        if self.gap_junctions is None:
            return 0
        a = values(self.gap_junctions.column("pre"))
        b = values(self.gap_junctions.column("post"))
        return int(np.count_nonzero(a < b) + np.count_nonzero(a == b))

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """float64 [n, n] matrices of a small network: the signed synapse counts
        ``[pre, post]`` (repeated connections summed) and the gap-junction counts
        ``[neighbour, neuron]`` (symmetric; zeros without gap junctions)."""
        n = self.n_neurons
        syn = np.zeros((n, n))
        np.add.at(syn, (self.pre_indices(), self.indices), np.asarray(self.counts, float))
        gap = np.zeros((n, n))
        if self.n_gap_junctions:
            a, b, k = self.gap_directed()
            np.add.at(gap, (a, b), k)
        return syn, gap

    def gap_directed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The gap-junction table as (a, b, count) int arrays, every unordered pair in both
        directions with one count; a table that is not symmetric is an error naming the
        first pair that lacks its mirror (or has another count)."""
        gj = self.gap_junctions
        if gj is None:
            z = np.zeros(0, np.int64)
            return z, z, z
        a = values(gj.column("pre")).astype(np.int64)
        b = values(gj.column("post")).astype(np.int64)
        count = values(gj.column("count")).astype(np.int64)
        n = self.n_neurons
        if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n):
            raise ConnectomeError("gap junction index out of range of the neuron table")
        if np.any(count <= 0):
            raise ConnectomeError("gap junction counts must be > 0")
        fwd = dict(zip((a * n + b).tolist(), count.tolist(), strict=True))
        for x, y, c in zip(a.tolist(), b.tolist(), count.tolist(), strict=True):
            if fwd.get(y * n + x) != c:
                ids = self.ids
                raise ConnectomeError(
                    f"gap junction table not symmetric: {ids[x]} -> {ids[y]} has count {c}, "
                    f"{ids[y]} -> {ids[x]} has {fwd.get(y * n + x, 0)}"
                )
        return a, b, count

    def summary(self) -> dict:
        """The figures that ``brainsim info`` prints."""
        return {
            "n_neurons": self.n_neurons,
            "n_connections": self.n_connections,
            "n_synapses": self.n_synapses,
            "n_excitatory": self.n_excitatory,
            "n_inhibitory": self.n_inhibitory,
            "n_gap_junctions": self.n_gap_junctions,
            "sign_rule": self.provenance.sign_rule,
            "checksum": self.provenance.checksum,
            "format": self.provenance.format,
            "rules_applied": {k: int(v) for k, v in self.provenance.counts.items()},
        }

    # ----------------------------------------------------------------- id lookup
    def index_of(self, ids: Iterable[int] | np.ndarray, *, what: str = "neuron ids") -> np.ndarray:
        """int32 internal indices of external ids; an unknown id raises, naming it."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        table_ids = self.ids
        order = np.argsort(table_ids, kind="stable")
        sorted_ids = table_ids[order]
        pos = np.searchsorted(sorted_ids, ids)
        pos_c = np.minimum(pos, len(sorted_ids) - 1)
        found = (
            (len(sorted_ids) > 0) & (sorted_ids[pos_c] == ids)
            if len(sorted_ids)
            else (np.zeros(ids.shape, bool))
        )
        if not np.all(found):
            missing = ids[~found]
            shown = ", ".join(str(int(m)) for m in missing[:10])
            more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
            raise ConnectomeError(
                f"{len(missing)} of {len(ids)} {what} are not in the connectome "
                f"({self.provenance.format}, {self.n_neurons} neurons): {shown}{more}"
            )
        return order[pos_c].astype(np.int32)

    # ----------------------------------------------------------------- views
    def to_post_sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """CSC view for kernels that gather by postsynaptic neuron.

        Returns ``(indptr_post, pre, counts, perm)``: connections of postsynaptic neuron j are
        ``indptr_post[j]:indptr_post[j+1]``, ``pre`` their presynaptic indices, ``counts``
        their signed counts and ``perm`` the positions of those connections in the CSR arrays.
        """
        pre = self.pre_indices()
        perm = np.lexsort((pre, self.indices)).astype(np.int64)
        indptr_post = np.zeros(self.n_neurons + 1, dtype=np.int64)
        np.cumsum(self.in_degree(), out=indptr_post[1:])
        return indptr_post, pre[perm], self.counts[perm], perm

    def edges(self) -> pa.Table:
        """All connections as a table (``pre_id``, ``post_id``, ``count``)."""
        ids = self.ids
        return pa.table(
            {
                "pre_id": ids[self.pre_indices()],
                "post_id": ids[self.indices],
                "count": self.counts,
            }
        )

    def __repr__(self) -> str:
        return (
            f"Connectome(format={self.provenance.format!r}, n_neurons={self.n_neurons}, "
            f"n_connections={self.n_connections}, n_synapses={self.n_synapses}, "
            f"sign_rule={self.provenance.sign_rule!r}, checksum={self.provenance.checksum[:12]}…)"
        )

    def provenance_json(self) -> str:
        return json.dumps(self.provenance.to_json(), sort_keys=True)


def check_csr(indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray, n: int) -> None:
    """Raise :class:`ConnectomeError` naming the first broken CSR invariant.

    ``indptr`` int64 [n + 1], starting at 0, non-decreasing, ending at the number of
    connections; ``indices`` and ``counts`` int32 of that length; every index in ``0..n-1``,
    ascending and unique within each row; every count nonzero.
    """
    arrays = (("indptr", indptr, np.int64), ("indices", indices, np.int32))
    for name, a, dtype in (*arrays, ("counts", counts, np.int32)):
        if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != 1:
            what = f"{a.dtype} with shape {a.shape}" if isinstance(a, np.ndarray) else type(a)
            raise ConnectomeError(f"{name} is {what}, expected a 1-D {np.dtype(dtype)} array")
    if indptr.shape != (n + 1,):
        raise ConnectomeError(f"indptr has shape {indptr.shape}, expected ({n + 1},)")
    if indices.shape != counts.shape:
        raise ConnectomeError("indices and counts differ in length")
    if int(indptr[0]) != 0:
        raise ConnectomeError(f"indptr[0] is {int(indptr[0])}, expected 0")
    if int(indptr[-1]) != indices.shape[0]:
        raise ConnectomeError("indptr[-1] does not equal the number of connections")
    row_len = np.diff(indptr)
    if row_len.size and int(row_len.min()) < 0:
        i = int(np.argmax(row_len < 0))
        raise ConnectomeError(f"indptr decreases at row {i} ({indptr[i]} -> {indptr[i + 1]})")
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ConnectomeError(f"postsynaptic index {bad} out of range 0..{n - 1}")
        # within a row indices ascend strictly; a step down or a repeat may only follow a
        # row's last connection
        step_ok = indices[1:] > indices[:-1]  # (no int32 temporary of the differences)
        step_ok[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < indices.size)] - 1] = True
        if not step_ok.all():
            k = int(np.argmin(step_ok))
            raise ConnectomeError(
                f"indices not ascending and unique within a row at connection {k + 1}"
            )
        if not counts.all():
            raise ConnectomeError(f"connection {int(np.argmin(counts != 0))} has count 0")


def from_edges(
    neurons: pa.Table,
    pre: np.ndarray,
    post: np.ndarray,
    counts: np.ndarray,
    provenance: Provenance,
    *,
    gap_junctions: pa.Table | None = None,
    merge_duplicates: str = "sum",
) -> Connectome:
    """Build a :class:`Connectome` from edge arrays of internal indices.

    ``pre`` and ``post`` are internal neuron indices, ``counts`` signed synapse counts. Rows
    that name the same (pre, post) pair are summed (``merge_duplicates="sum"``, the rule for
    FlyWire rows split by neuropil) and the number of merged rows is added to the
    provenance counts under ``pair_rows_merged``; ``merge_duplicates="error"`` raises
    instead. Pairs whose summed signed count is zero are kept out and counted under
    ``zero_sum_pairs_dropped``.
    """
    n = neurons.num_rows
    pre = np.asarray(pre, dtype=np.int64)
    post = np.asarray(post, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if not (pre.shape == post.shape == counts.shape):
        raise ConnectomeError("pre, post and counts differ in length")
    if pre.size and (pre.min() < 0 or pre.max() >= n or post.min() < 0 or post.max() >= n):
        raise ConnectomeError("edge index out of range of the neuron table")
    key = pre * n + post
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    uniq, start = np.unique(key_sorted, return_index=True)
    n_merged = int(key.size - uniq.size)
    if n_merged and merge_duplicates == "error":
        first_dup = key_sorted[np.nonzero(np.diff(key_sorted) == 0)[0][0]]
        ids = values(neurons.column("id"))
        raise ConnectomeError(
            f"duplicate connection {ids[first_dup // n]} -> {ids[first_dup % n]} "
            f"({n_merged} duplicate rows in all)"
        )
    summed = np.add.reduceat(counts[order], start) if key.size else counts[:0]
    keep = summed != 0
    n_zero = int((~keep).sum())
    uniq, summed = uniq[keep], summed[keep]
    if summed.size and np.abs(summed).max() > np.iinfo(np.int32).max:
        raise ConnectomeError("a synapse count exceeds int32")
    row = uniq // n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
    counts_info = dict(provenance.counts)
    if n_merged:
        counts_info["pair_rows_merged"] = counts_info.get("pair_rows_merged", 0) + n_merged
    if n_zero:
        counts_info["zero_sum_pairs_dropped"] = (
            counts_info.get("zero_sum_pairs_dropped", 0) + n_zero
        )
    prov = dataclasses.replace(provenance, counts=counts_info)
    return Connectome(
        neurons=neurons,
        indptr=indptr,
        indices=(uniq % n).astype(np.int32),
        counts=summed.astype(np.int32),
        provenance=prov,
        gap_junctions=gap_junctions,
    )
