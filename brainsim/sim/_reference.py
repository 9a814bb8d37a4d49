"""Reference stepper: every neuron and every connection at every step (plain JAX).

Simple enough to check by eye; the windowed event-driven stepper is tested against it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from brainsim.kernels import propagate_dense
from brainsim.models import LIF
from brainsim.sim._network import Network
from brainsim.sim._params import neuron_params, propagators
from brainsim.sim._protocol import Drive


class ReferenceState(eqx.Module):
    v: Float[Array, "trials neurons"]
    g: Float[Array, "trials neurons"]
    since: Int[Array, "trials neurons"]
    # synaptic input in flight: slot t % delay holds what arrives at step t
    ring: Float[Array, "delay trials neurons"]


def reference_init(model: LIF, n_trials: int, n_neurons: int, dtype) -> ReferenceState:
    from brainsim.sim._state import initial_neurons

    v, g, since = initial_neurons(model, n_trials, n_neurons, dtype)
    return ReferenceState(v, g, since, jnp.zeros((model.delay_steps, n_trials, n_neurons), dtype))


@eqx.filter_jit
def reference_chunk(
    model: LIF,
    net: Network,
    drive: Drive,
    refractory_steps: Int[Array, " neurons"],
    state: ReferenceState,
    t0: Int[Array, ""],
    replay: Float[Array, "steps trials inputs_or_1"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
):
    """Advance ``replay.shape[0]`` steps from absolute step ``t0``.

    Returns ``(state, spikes [steps, trials, neurons] bool, v_rec, g_rec [steps, trials, rec])``.
    """
    dtype = state.v.dtype
    d = model.delay_steps
    props = propagators(model, 1, dtype)
    params = neuron_params(model, dtype)
    w_pre = jnp.broadcast_to(params["w_syn"], (net.n_neurons,))[net.pre]
    weight = net.counts * w_pre
    silent = drive.outputs_cut()

    def body(s: ReferenceState, xs):
        t, replay_t = xs
        slot = t % d
        syn_in = drive.incoming(s.ring[slot])
        ev_full, ie_full = drive.dense_inputs_at(key, t, replay_t, model.dt_ms, d, s.v)
        v, g, since, spk = model.step(
            s.v, s.g, s.since, refractory_steps, syn_in, ev_full, ie_full, props, **params
        )
        out = spk if silent is None else spk & ~silent
        ring = s.ring.at[slot].set(propagate_dense(out.astype(dtype), net.pre, net.indices, weight))
        return ReferenceState(v, g, since, ring), (spk, v[:, rec_idx], g[:, rec_idx])

    steps = t0 + jnp.arange(replay.shape[0], dtype=jnp.int32)
    state, (spikes, v_rec, g_rec) = jax.lax.scan(body, state, (steps, replay))
    return state, spikes, v_rec, g_rec
