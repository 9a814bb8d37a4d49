"""The connectome as device arrays for the kernels."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from brainsim.connectome import Connectome


class Network(eqx.Module):
    """CSR synapse table on the device.

    ``counts`` are the signed synapse counts as floats; a connection's weight in mV is
    ``counts x w_syn_mv`` of its presynaptic neuron. ``pre`` (the CSR rows expanded) is only
    built for the dense reference kernel.
    """

    indptr: Int[Array, " n_plus_1"]
    indices: Int[Array, " connections"]
    counts: Float[Array, " connections"]
    pre: Int[Array, " connections"] | None
    n_neurons: int = eqx.field(static=True)

    @classmethod
    def from_connectome(cls, conn: Connectome, dtype=jnp.float32, *, with_pre: bool = False):
        # the kernels (the native one too) index with these arrays unchecked
        conn.check_csr()
        idx_t = np.int32 if conn.n_connections < 2**31 - 1 else np.int64
        # one trailing padding connection (no row points at it) keeps gathers valid for the
        # budget-sized padding slots, also on a network without synapses
        return cls(
            indptr=jnp.asarray(conn.indptr.astype(idx_t)),
            indices=jnp.asarray(np.append(conn.indices, 0).astype(np.int32)),
            counts=jnp.asarray(np.append(conn.counts, 0), dtype),
            pre=jnp.asarray(np.append(conn.pre_indices(), 0)) if with_pre else None,
            n_neurons=conn.n_neurons,
        )
