"""The connectome as device arrays for the kernels, and the synapse kinds built from it."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from brainsim.connectome import Connectome
from brainsim.models import AbstractNeuron, DelayedEvents, GapJunctions, GradedChemical
from brainsim.sim._units import to_device


class Network(eqx.Module):
    """CSR synapse table on the device, and the electrical synapses.

    ``counts`` are the signed synapse counts as floats (sign x mean count for a connectome
    with ``n_syn``, e.g. flyvis's); a connection's weight in mV is
    ``counts x w_syn_mv`` of its presynaptic neuron. ``pre`` (the CSR rows expanded) is only
    built for the dense reference kernel. ``gap_a``, ``gap_b``, ``gap_count``: the gap
    junctions, each unordered pair listed in both directions (None without them).
    """

    indptr: Int[Array, " n_plus_1"]
    indices: Int[Array, " connections"]
    counts: Float[Array, " connections"]
    pre: Int[Array, " connections"] | None
    n_neurons: int = eqx.field(static=True)
    gap_a: Int[Array, " junctions"] | None = None
    gap_b: Int[Array, " junctions"] | None = None
    gap_count: Float[Array, " junctions"] | None = None

    @classmethod
    def from_connectome(cls, conn: Connectome, dtype=jnp.float32, *, with_pre: bool = False):
        # the kernels (the native one too) index with these arrays unchecked
        conn.check_csr()
        idx_t = np.int32 if conn.n_connections < 2**31 - 1 else np.int64
        gap_a = gap_b = gap_count = None
        if conn.gap_junctions is not None and conn.gap_junctions.num_rows:
            a, b, count = conn.gap_directed()
            gap_a, gap_b = to_device(a, np.int32), to_device(b, np.int32)
            gap_count = to_device(count, dtype)
        # one trailing padding connection (no row points at it) keeps gathers valid for the
        # budget-sized padding slots, also on a network without synapses
        return cls(
            indptr=to_device(conn.indptr, idx_t),
            indices=to_device(_padded(conn.indices, np.int32)),
            # (converted on the host: XLA's conversion of 15M float64 took 0.3-0.5 s here;
            # integer counts straight to the dtype, the same rounding as through float64)
            counts=to_device(
                _padded(conn.counts if conn.n_syn is None else conn.signed_size(), dtype)
            ),
            pre=to_device(_padded(conn.pre_indices(), np.int32)) if with_pre else None,
            n_neurons=conn.n_neurons,
            gap_a=gap_a,
            gap_b=gap_b,
            gap_count=gap_count,
        )

    def gap_conductance(self) -> np.ndarray:
        """float64 [n_neurons]: ``sum_j n_ij``, the gap junctions of each neuron."""
        out = np.zeros(self.n_neurons)
        if self.gap_a is not None:
            np.add.at(out, np.asarray(self.gap_a), np.asarray(self.gap_count, np.float64))
        return out


def synapse_kinds(model: AbstractNeuron, gap_junctions: bool) -> frozenset[str]:
    """The synapse kinds a run of ``model`` uses: chemical ones by the model's nature
    (delayed events for a spiking model, graded for a graded one), gap junctions if any."""
    chemical = DelayedEvents.kind if model.spiking else GradedChemical.kind
    return frozenset({chemical, *([GapJunctions.kind] if gap_junctions else [])})


def build_synapses(model: AbstractNeuron, net: Network, gap_junctions: bool) -> tuple:
    """The synapse objects of a reference run (``net`` built ``with_pre=True``)."""
    if net.pre is None:
        raise ValueError("synapse objects need a Network built with with_pre=True")
    w = jnp.asarray(model.synapse_weight())
    w_pre = jnp.broadcast_to(w.astype(net.counts.dtype), (net.n_neurons,))[net.pre]
    weight = net.counts * w_pre
    if model.spiking:
        out = [DelayedEvents(net.pre, net.indices, weight, model.delay_steps)]
    else:
        out = [GradedChemical(net.pre, net.indices, weight)]
    if gap_junctions and net.gap_a is not None:
        out.append(GapJunctions(net.gap_a, net.gap_b, net.gap_count * model.w_gap))
    return tuple(out)


def _padded(x: np.ndarray, dtype) -> np.ndarray:
    """``x`` in ``dtype`` with one trailing 0, written into one new array (``np.append``
    of a converted copy costs two passes over 15M entries)."""
    out = np.empty(x.shape[0] + 1, np.dtype(dtype))
    out[:-1] = x
    out[-1] = 0
    return out
