"""Plain-JAX reference propagation: every connection, every step.

Cost grows with the number of connections, not with the number of spikes; it is the
reference that the event-driven kernels are tested against, not a fast path.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

# the plain sum over connections lives with the synapse kinds that use it
from brainsim.models._synapses import propagate_dense  # noqa: F401


def propagate_dense_matrix(
    spikes: Float[Array, "trials neurons"], weight_matrix: Float[Array, "neurons neurons"]
) -> Float[Array, "trials neurons"]:
    """Same as :func:`propagate_dense` with a dense [pre, post] weight matrix (tiny nets)."""
    return jnp.matmul(spikes, weight_matrix)
