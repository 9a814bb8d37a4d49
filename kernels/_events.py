"""Event-driven propagation over the CSR rows of the neurons that spiked.

The work is proportional to the synapses of the spiking neurons, not to all synapses. Array
sizes are fixed by budgets (``spike_budget``, ``edge_budget``) so that the kernel can live
inside ``jit``; the kernel reports the true totals, and the caller must re-run with larger
budgets whenever a total exceeds its budget (the engine does so), so no event is dropped.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def compact(mask: Bool[Array, " n"], budget: int):
    """Positions of the True entries (ascending), padded to ``budget`` with ``n``.

    Returns ``(positions, count)``; entries past ``count`` are padding. If ``count`` exceeds
    ``budget`` the list is truncated and the caller must grow the budget and retry.
    """
    n = mask.shape[0]
    (pos,) = jnp.nonzero(mask, size=budget, fill_value=n)
    return pos.astype(jnp.int32), jnp.sum(mask, dtype=jnp.int32)


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
    rows_c = jnp.where(valid, rows, 0)
    start = indptr[rows_c]
    deg = jnp.where(valid, indptr[rows_c + 1] - start, 0)
    cum = jnp.cumsum(deg)
    total = cum[-1] if cum.shape[0] else jnp.zeros((), cum.dtype)
    slot = jnp.arange(edge_budget, dtype=cum.dtype)
    source = jnp.searchsorted(cum, slot, side="right").astype(jnp.int32)
    source_c = jnp.minimum(source, rows.shape[0] - 1)
    first = cum[source_c] - deg[source_c]
    in_range = slot < total
    edge = jnp.where(in_range, start[source_c] + (slot - first), 0)
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
