"""Synapse kinds: what one population's state sends to another's input each step.

Each kind writes one :class:`brainsim.models.NeuronInput` channel (``channel``):

- :class:`DelayedEvents` (chemical, spiking models): a spike adds its connection's weight
  (mV of the postsynaptic g) to every target, ``delay_steps`` steps later. Input in flight
  sits in a ring of ``delay_steps`` slots; slot ``t % D`` holds what arrives at step t.
- :class:`GradedChemical` (chemical, graded models, as flyvis): every step each target
  receives ``sum_j w_ij f(V_j)``, with ``f`` the presynaptic model's transfer
  (:meth:`AbstractNeuron.output`); no delay.
- :class:`GapJunctions` (electrical): symmetric, ``I_i = w_gap sum_j n_ij (V_j - V_i)``; the
  kind delivers the neighbours' part ``w_gap sum_j n_ij V_j`` and the neuron model adds its
  own ``- w_gap n_i V_i`` (see ``NeuronInput.gap``).

Connections are given as flat arrays (pre, post, weight): the steppers build them from a
``brainsim.sim.Network``. All arithmetic is one segment sum per step over the connections,
the plain reference form (the same sum as ``brainsim.kernels.propagate_dense``, which the
fast LIF steppers' tests hold equal to their event-driven delivery).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class AbstractSynapses(eqx.Module):
    """A synapse kind (see the module docstring)."""

    kind: ClassVar[str]
    channel: ClassVar[str]
    # what the kind reads from its presynaptic neurons: "spikes", "output" or "voltage"
    reads: ClassVar[str]

    def init_state(self, n_trials: int, n_neurons: int, dtype) -> Any:
        """Input in flight (None for a kind without delay)."""
        return None

    @abc.abstractmethod
    def deliver(self, state: Any, t, pre: Float[Array, "trials neurons"]):
        """[trials, neurons]: what reaches the targets at step ``t``. ``pre`` is what the
        kind ``reads`` at the step's start (unused by :class:`DelayedEvents`)."""

    def update(self, state: Any, t, spikes: Float[Array, "trials neurons"]) -> Any:
        """State after step ``t`` given the spikes sent (silenced neurons already zeroed)."""
        return state


class DelayedEvents(AbstractSynapses):
    """Delayed chemical event synapses: ``weight`` [connections] in mV of g."""

    kind: ClassVar[str] = "delayed_events"
    channel: ClassVar[str] = "arrivals"
    reads: ClassVar[str] = "spikes"
    pre: Int[Array, " connections"]
    post: Int[Array, " connections"]
    weight: Float[Array, " connections"]
    delay_steps: int = eqx.field(static=True)

    def init_state(self, n_trials, n_neurons, dtype):
        return jnp.zeros((self.delay_steps, n_trials, n_neurons), dtype)

    def deliver(self, state, t, pre):
        return state[t % self.delay_steps]

    def update(self, state, t, spikes):
        sent = propagate_dense(spikes.astype(state.dtype), self.pre, self.post, self.weight)
        return state.at[t % self.delay_steps].set(sent)


class _EveryStep(AbstractSynapses):
    """A kind without delay: each step, ``weight x`` what it reads, summed per target."""

    pre: Int[Array, " connections"]
    post: Int[Array, " connections"]
    weight: Float[Array, " connections"]

    def deliver(self, state, t, pre):
        return propagate_dense(pre, self.pre, self.post, self.weight)


class GradedChemical(_EveryStep):
    """Graded chemical synapses: ``weight`` [connections] times the presynaptic output."""

    kind: ClassVar[str] = "graded_chemical"
    channel: ClassVar[str] = "current"
    reads: ClassVar[str] = "output"


# fewest trials for which SparseGradedChemical uses the BCSR product (measured on the CPU:
# below 8 it is slower than the sorted segment sum)
SPARSE_MIN_BATCH = 8


class SparseGradedChemical(AbstractSynapses):
    """:class:`GradedChemical` with the connections grouped by target: for
    :data:`SPARSE_MIN_BATCH` trials or more a sparse matrix product
    (``jax.experimental.sparse`` BCSR, rows = targets), for fewer the plain form's segment
    sum. The same sum, faster on the CPU than the plain form's (flyvis's
    lattice, 1.5M connections, 2 cores: 24 trials 4 ms against 20-33 ms per step; BCSR is
    slower than the segment sum below 8 trials: 1 trial 20.7 ms against 2.6 ms); differentiable in
    ``weight``. Built by :meth:`from_connections`; tested equal to
    :class:`GradedChemical`."""

    kind: ClassVar[str] = "graded_chemical"
    channel: ClassVar[str] = "current"
    reads: ClassVar[str] = "output"
    pre: Int[Array, " connections"]  # in the input order (the segment-sum form)
    post: Int[Array, " connections"]
    indices: Int[Array, " connections"]  # presynaptic neuron, grouped by target (BCSR)
    indptr: Int[Array, " n_plus_1"]  # per target neuron
    order: Int[Array, " connections"]  # input position of each connection in that order
    weight: Float[Array, " connections"]  # in the input order
    data: Float[Array, " connections"]  # the same weights in the target order (BCSR)
    n_neurons: int = eqx.field(static=True)

    @classmethod
    def from_connections(cls, pre, post, weight, n_neurons: int):
        import numpy as np

        pre, post = np.asarray(pre, np.int64), np.asarray(post, np.int64)
        order = np.lexsort((pre, post))
        indptr = np.zeros(n_neurons + 1, np.int64)
        np.cumsum(np.bincount(post, minlength=n_neurons), out=indptr[1:])
        return cls(
            jnp.asarray(pre, jnp.int32),
            jnp.asarray(post, jnp.int32),
            jnp.asarray(pre[order], jnp.int32),
            jnp.asarray(indptr, jnp.int32),
            jnp.asarray(order, jnp.int32),
            jnp.asarray(weight),
            jnp.asarray(weight)[jnp.asarray(order, jnp.int32)],
            int(n_neurons),
        )

    def with_weight(self, weight):
        """The same connections with other weights (e.g. traced parameters in a fit); the
        target-order copy is made here, once, not at every step."""
        return eqx.tree_at(lambda s: (s.weight, s.data), self, (weight, weight[self.order]))

    def deliver(self, state, t, pre):
        from jax.experimental import sparse

        n = self.n_neurons
        if pre.shape[0] < SPARSE_MIN_BATCH:
            return propagate_dense(pre, self.pre, self.post, self.weight.astype(pre.dtype))
        m = sparse.BCSR((self.data.astype(pre.dtype), self.indices, self.indptr), shape=(n, n))
        return (m @ pre.T).T


class GapJunctions(_EveryStep):
    """Electrical synapses, each junction listed in both directions (``pre``, ``post``):
    ``weight = w_gap x n_ij`` times the neighbour's voltage."""

    kind: ClassVar[str] = "gap_junctions"
    channel: ClassVar[str] = "gap"
    reads: ClassVar[str] = "voltage"


def propagate_dense(x, pre, post, weight):
    """``out[b, j] = sum over connections e with post[e] == j of x[b, pre[e]] weight[e]``."""
    n = x.shape[-1]
    contrib = x[:, pre] * weight
    return jax.vmap(lambda c: jax.ops.segment_sum(c, post, num_segments=n))(contrib).astype(x.dtype)


# transfer functions of graded synapses: f(V) with V in mV
TRANSFERS = {
    "relu": lambda v: jnp.maximum(v, 0),
    "identity": lambda v: v,
    "tanh": jnp.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + jnp.exp(-v)),
    "softplus": lambda v: jnp.logaddexp(v, 0.0),
}
