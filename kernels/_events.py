"""Event-driven propagation over the CSR rows of the neurons that spiked.

The work is proportional to the synapses of the spiking neurons, not to all synapses. Array
sizes are fixed by budgets (``spike_budget``, ``edge_budget``) so that the kernel can live
inside ``jit``; the kernel reports the true totals, and the caller must re-run with larger
budgets whenever a total exceeds its budget (the engine does so), so no event is dropped.

Scatters write in ``mode="clip"`` into arrays with a trailing *trash region* that receives
every padding or overflowing entry (:func:`scatter_to`): on XLA's CPU backend a scatter in
``mode="drop"`` costs about 4x more per element, and padding written to a single trash slot
about 3x more than spread over a region (``benchmarks/bench_kernel_blocks.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

TRASH = 1024  # slots of the trash region (padding entries spread over it)


def trash_index(idx, size: int):
    """``idx`` with every entry ``>= size`` sent to one of the ``TRASH`` slots after ``size``,
    spread by position: many writes to one slot would form a dependency chain (measured 3x
    slower on CPU)."""
    spread = size + jnp.arange(idx.shape[0], dtype=idx.dtype) % TRASH
    return jnp.where(idx < size, idx, spread)


def scatter_to(size: int, idx, values, *, fill=0, op: str = "add"):
    """``values`` written (``op`` "add" or "set") at ``idx`` of a new array of ``size``
    entries filled with ``fill``; indices ``>= size`` (padding, overflow) are discarded
    through a trash region. Indices must be non-negative."""
    values = jnp.asarray(values)
    values = jnp.broadcast_to(values, (idx.shape[0], *values.shape[1:]))
    out = jnp.full((size + TRASH, *values.shape[1:]), fill, values.dtype)
    at = out.at[trash_index(idx, size)]
    out = at.add(values, mode="clip") if op == "add" else at.set(values, mode="clip")
    return out[:size]


def ranks(mask: Bool[Array, " n"]):
    """``(rank, count)``: ``rank[i]`` is the number of True entries before ``i`` (the
    position entry ``i`` takes in the compacted list when it is True)."""
    m = mask.astype(jnp.int32)
    incl = jnp.cumsum(m)
    count = incl[-1] if mask.shape[0] else jnp.zeros((), jnp.int32)
    return incl - m, count


def compact(mask: Bool[Array, " n"], budget: int, rank=None):
    """Positions of the True entries (ascending), padded to ``budget`` with ``n``.

    Returns ``(positions, count)``; entries past ``count`` are padding. If ``count`` exceeds
    ``budget`` the list is truncated and the caller must grow the budget and retry.
    ``rank`` (from :func:`ranks`) may be passed when already computed.
    """
    n = mask.shape[0]
    if rank is None:
        rank, count = ranks(mask)
    else:
        count = jnp.sum(mask, dtype=jnp.int32)
    dest = jnp.where(mask, rank, budget)
    pos = scatter_to(budget, dest, jnp.arange(n, dtype=jnp.int32), fill=n, op="set")
    return pos, count


def compact_sparse(mask, budget: int, block: int = 32):
    """:func:`compact` for a long, sparse mask: the blocks of ``block`` entries that hold a
    True are found first (a reduction), then only those blocks are compacted. Same result
    as ``compact(mask, budget)`` whenever the count fits the budget (the count is exact
    either way)."""
    n = mask.shape[0]
    pad = -n % block
    blocks = jnp.pad(mask, (0, pad)).reshape(-1, block)
    n_blocks = blocks.shape[0]
    count = jnp.sum(mask, dtype=jnp.int32)
    # at most ``budget`` blocks hold the first ``budget`` entries
    b_pos, _ = compact(jnp.any(blocks, axis=1), budget)
    live = b_pos < n_blocks
    picked = blocks[jnp.minimum(b_pos, n_blocks - 1)] & live[:, None]
    inner, _ = compact(picked.reshape(-1), budget)
    row, col = inner // block, inner % block
    pos = b_pos[jnp.minimum(row, budget - 1)] * block + col
    return jnp.where(inner < budget * block, pos, n).astype(jnp.int32), count


def expand_rows(
    rows: Int[Array, " spikes"],
    valid: Bool[Array, " spikes"],
    indptr: Int[Array, " n_plus_1"],
    edge_budget: int,
):
    """Flatten the CSR rows of the given (presynaptic) neurons into one list of connections.

    Args:
        rows: presynaptic neuron index of each spike (any value where not ``valid``).
        valid: which entries of ``rows`` are real spikes.
        indptr: CSR row pointers.
        edge_budget: length of the returned lists.
    Returns:
        ``(edge, source, total)``: ``edge[k]`` is the connection index of slot k (0 past
        ``total``), ``source[k]`` the position in ``rows`` it came from, and ``total`` the
        true number of connections (may exceed ``edge_budget``: then grow and retry).
    """
    n_rows = rows.shape[0]
    rows_c = jnp.where(valid, rows, 0)
    start = indptr[rows_c]
    deg = jnp.where(valid, indptr[rows_c + 1] - start, 0)
    cum = jnp.cumsum(deg)
    total = cum[-1] if n_rows else jnp.zeros((), cum.dtype)
    first = cum - deg
    # Each non-empty row marks its first slot with the distance (in rows) from the previous
    # non-empty row; a running sum over the slots then gives every slot its row.
    pos = jnp.arange(n_rows, dtype=jnp.int32)
    nonempty = deg > 0
    last_before = jax.lax.cummax(jnp.where(nonempty, pos, 0))
    prev = jnp.concatenate([jnp.zeros((1,), jnp.int32), last_before[:-1]])
    mark_at = jnp.where(nonempty, first, edge_budget).astype(jnp.int32)
    marks = scatter_to(edge_budget, mark_at, jnp.where(nonempty, pos - prev, 0))
    source_c = jnp.minimum(jnp.cumsum(marks), max(n_rows - 1, 0))
    slot = jnp.arange(edge_budget, dtype=cum.dtype)
    in_range = slot < total
    edge = jnp.where(in_range, start[source_c] + (slot - first[source_c]), 0)
    return edge, jnp.where(in_range, source_c, -1), total


def propagate_events(
    spike_rows: Int[Array, " spikes"],
    spike_valid: Bool[Array, " spikes"],
    indptr: Int[Array, " n_plus_1"],
    indices: Int[Array, " connections"],
    weight_mv: Float[Array, " connections"],
    edge_budget: int,
):
    """Synaptic events caused by a list of spikes.

    Returns ``(post, source, weight, total)`` over ``edge_budget`` slots: postsynaptic
    neuron, index of the causing spike in the input list (-1 for padding), weight in mV
    (0 for padding), and the true number of events.
    """
    edge, source, total = expand_rows(spike_rows, spike_valid, indptr, edge_budget)
    live = source >= 0
    post = jnp.where(live, indices[edge], 0)
    w = jnp.where(live, weight_mv[edge], jnp.zeros((), weight_mv.dtype))
    return post, source, w, total
