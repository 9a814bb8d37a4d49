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
from brainsim.kernels._native import (
    dense_deliver,
    dense_lif_chunk,
    events_backward,
    events_forward,
    native_choice,
    native_kernels,
    window_deliver,
    windowed_lif_chunk,
)
from brainsim.kernels._poisson import (
    DEFAULT_STREAM,
    STREAMS,
    poisson_block,
    poisson_events,
    stream_keys,
    threefry2x32,
    window_block,
    window_thresholds,
)

__all__ = [
    "DEFAULT_STREAM",
    "STREAMS",
    "TRASH",
    "compact",
    "compact_sparse",
    "dense_deliver",
    "dense_lif_chunk",
    "events_backward",
    "events_forward",
    "expand_rows",
    "native_choice",
    "native_kernels",
    "poisson_block",
    "poisson_events",
    "propagate_dense",
    "propagate_dense_matrix",
    "propagate_events",
    "ranks",
    "scatter_to",
    "stream_keys",
    "threefry2x32",
    "trash_index",
    "window_block",
    "window_deliver",
    "window_thresholds",
    "windowed_lif_chunk",
]
