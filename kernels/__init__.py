"""Hot loops in JAX (installed as ``brainsim.kernels``).

Spike propagation has a plain reference (:func:`propagate_dense`, every connection every
step) and an event-driven fast path (:func:`propagate_events`, only the rows of neurons
that spiked); tests hold them equal.
"""

from brainsim.kernels._dense import propagate_dense, propagate_dense_matrix
from brainsim.kernels._events import (
    TRASH,
    compact,
    compact_sparse,
    expand_rows,
    propagate_events,
    ranks,
    scatter_to,
    trash_index,
)
from brainsim.kernels._native import dense_deliver, native_kernels, window_deliver
from brainsim.kernels._poisson import poisson_block, poisson_events

__all__ = [
    "TRASH",
    "compact",
    "compact_sparse",
    "dense_deliver",
    "expand_rows",
    "native_kernels",
    "poisson_block",
    "poisson_events",
    "propagate_dense",
    "propagate_dense_matrix",
    "propagate_events",
    "ranks",
    "scatter_to",
    "trash_index",
    "window_deliver",
]
