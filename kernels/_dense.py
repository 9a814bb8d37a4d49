"""Plain-JAX reference propagation: every connection, every step.

Cost grows with the number of connections, not with the number of spikes; it is the
reference that the event-driven kernels are tested against, not a fast path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def propagate_dense(
    spikes: Float[Array, "trials neurons"],
    pre: Int[Array, " connections"],
    post: Int[Array, " connections"],
    weight_mv: Float[Array, " connections"],
) -> Float[Array, "trials neurons"]:
    """Synaptic input (mV of g) that the given spikes send to every neuron.

    ``out[b, j] = sum over connections e with post[e] == j of spikes[b, pre[e]] * weight[e]``.
    """
    n = spikes.shape[-1]
    contrib = spikes[:, pre] * weight_mv  # [trials, connections]
    return jax.vmap(lambda c: jax.ops.segment_sum(c, post, num_segments=n))(contrib).astype(
        spikes.dtype
    )


def propagate_dense_matrix(
    spikes: Float[Array, "trials neurons"], weight_matrix: Float[Array, "neurons neurons"]
) -> Float[Array, "trials neurons"]:
    """Same as :func:`propagate_dense` with a dense [pre, post] weight matrix (tiny nets)."""
    return jnp.matmul(spikes, weight_matrix)
