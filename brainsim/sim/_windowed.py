"""Fast stepper: event-driven propagation, once per delay window, over active neurons only.

Why it is exact. Every synapse has the same delay of D steps, so the input that arrives in
the window of steps ``[wD, wD + D)`` comes from spikes of the previous window, all known when
the window starts. Within a window, neurons do not influence each other. So per window:

1. the previous window's spikes are expanded over their CSR rows into synaptic events
   (event-driven: work grows with the spikes' synapses, not with all synapses);
2. a neuron is *active* in the window when it receives an event, is refractory, is an input
   or recorded neuron, or could still reach threshold on its own: ``v_0 + max(v - v_0, 0) +
   max(g, 0) x peak`` is above ``v_th`` (``peak`` is the largest voltage a unit of g can
   still produce, :meth:`LIF.psp_peak_factor`);
3. active neurons are stepped D times, one dt at a time, with the model's step function;
   every other neuron has no input, is not refractory and cannot spike in the window, so its
   D steps are the exact linear solution over D x dt, applied at once.

The closed-form jump equals D single steps up to floating-point rounding, so spikes agree
with the reference stepper except where a voltage lies within rounding of the threshold.

Budgets: the active list, the spikes of a window and their synaptic events live in arrays of
fixed sizes (``Budgets``). The stepper reports the true counts; the engine re-runs a chunk
with larger budgets whenever a count exceeded its budget, so nothing is ever dropped.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from brainsim.kernels import compact, propagate_events
from brainsim.models import LIF, SINCE_MAX
from brainsim.sim._network import Network
from brainsim.sim._params import at, neuron_params, propagators
from brainsim.sim._protocol import Drive


@dataclasses.dataclass(frozen=True)
class Budgets:
    """Array sizes per window, summed over trials: active neurons, spikes, synaptic events."""

    active: int
    spikes: int
    events: int

    def grown(self, n_active: int, n_spikes: int, n_events: int) -> Budgets:
        """Budgets that fit the given counts with headroom (powers of two: few recompiles)."""

        def fit(cur: int, need: int) -> int:
            if need <= cur:
                return cur
            size = cur
            while size < 1.25 * need:
                size *= 2
            return size

        return Budgets(
            fit(self.active, n_active), fit(self.spikes, n_spikes), fit(self.events, n_events)
        )


class WindowedState(eqx.Module):
    v: Float[Array, "trials neurons"]
    g: Float[Array, "trials neurons"]
    since: Int[Array, "trials neurons"]
    # spikes of the previous window: flat index trial * n + neuron (n_trials * n = none),
    # and step within that window
    pending_flat: Int[Array, " spikes"]
    pending_k: Int[Array, " spikes"]

    def with_spike_budget(self, size: int) -> WindowedState:
        """The same state with the pending spike list padded to ``size``."""
        cur = self.pending_flat.shape[0]
        if size == cur:
            return self
        none = self.v.size
        flat = jnp.full((size,), none, jnp.int32).at[:cur].set(self.pending_flat)
        k = jnp.zeros((size,), jnp.int32).at[:cur].set(self.pending_k)
        return dataclasses.replace(self, pending_flat=flat, pending_k=k)


def windowed_init(model: LIF, n_trials: int, n_neurons: int, dtype, spike_budget: int):
    from brainsim.sim._state import initial_neurons

    v, g, since = initial_neurons(model, n_trials, n_neurons, dtype)
    return WindowedState(
        v,
        g,
        since,
        jnp.full((spike_budget,), n_trials * n_neurons, jnp.int32),
        jnp.zeros((spike_budget,), jnp.int32),
    )


@eqx.filter_jit
def windowed_chunk(
    model: LIF,
    net: Network,
    drive: Drive,
    refractory_steps: Int[Array, " neurons"],
    always_active: Bool[Array, " neurons"],
    state: WindowedState,
    w0: Int[Array, ""],
    replay: Float[Array, "windows delay trials inputs"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
    budgets: Budgets,
    peak: float,
):
    """Advance ``replay.shape[0]`` windows of ``model.delay_steps`` steps from window ``w0``.

    Returns ``(state, spikes_flat [windows, S], spikes_k [windows, S], counts [windows, 3],
    v_rec, g_rec [windows, D, trials, rec])``; ``counts`` holds the true numbers of active
    neurons, spikes and synaptic events of each window, to compare with the budgets.
    """
    dtype = state.v.dtype
    n_trials, n = state.v.shape
    none = n_trials * n
    d = model.delay_steps
    n_act, n_spk, n_ev = budgets.active, budgets.spikes, budgets.events
    params = neuron_params(model, dtype)
    a_d, b_d, c_d = propagators(model, d, dtype)
    w_syn_pre = jnp.broadcast_to(params["w_syn"], (n,))
    weight_by_count = net.counts
    silent = drive.silenced
    if drive.removed is not None:
        silent = drive.removed if silent is None else silent | drive.removed
    tol = 1e-4 * (jnp.abs(params["v_th"] - params["v_0"]) + 1.0)
    input_flat = (
        jnp.arange(n_trials, dtype=jnp.int32)[:, None] * n + drive.input_idx[None, :]
    ).ravel()
    rec_flat = jnp.arange(n_trials, dtype=jnp.int32)[:, None] * n + rec_idx[None, :]

    def window(s: WindowedState, xs):
        w, replay_w = xs
        # 1. the previous window's spikes -> this window's synaptic events
        live_sp = s.pending_flat < none
        pend = jnp.minimum(s.pending_flat, none - 1)
        b_sp, i_sp = pend // n, pend % n
        if silent is not None:
            live_sp = live_sp & ~silent[b_sp, i_sp]
        post, src, wt_count, n_events = propagate_events(
            i_sp, live_sp, net.indptr, net.indices, weight_by_count, n_ev
        )
        live_ev = src >= 0
        src_c = jnp.maximum(src, 0)
        ev_flat = jnp.where(live_ev, b_sp[src_c] * n + post, none)
        ev_k = s.pending_k[src_c]
        ev_w = wt_count * w_syn_pre[i_sp[src_c]]
        if drive.removed is not None:
            ev_w = jnp.where(drive.removed.ravel()[jnp.minimum(ev_flat, none - 1)], 0, ev_w)

        # 2. which (trial, neuron) must be stepped one dt at a time
        could_fire = (
            params["v_0"] + jnp.maximum(s.v - params["v_0"], 0) + jnp.maximum(s.g, 0) * peak
            > params["v_th"] - tol
        )
        mask = could_fire | (s.since < refractory_steps) | always_active[None, :]
        mask = mask.ravel().at[ev_flat].set(True, mode="drop")
        act, n_active = compact(mask, n_act)
        live_a = act < none
        act_c = jnp.minimum(act, none - 1)
        ia = act_c % n

        # 3. everyone: the exact jump over the window (overwritten below for active ones)
        u = s.v - params["v_0"]
        v_jump = params["v_0"] + u * a_d + s.g * c_d
        g_jump = s.g * b_d
        since_jump = jnp.minimum(s.since + d, SINCE_MAX)

        # 4. active neurons, step by step
        slot_of = lambda flat: jnp.where(  # noqa: E731
            flat < none, jnp.searchsorted(act, flat).astype(jnp.int32), n_act
        )
        arrivals = jnp.zeros((d, n_act), dtype).at[ev_k, slot_of(ev_flat)].add(ev_w, mode="drop")
        in_slot = slot_of(input_flat)
        rec_slot = jnp.minimum(slot_of(rec_flat), n_act - 1)
        p_a = neuron_params(model, dtype, ia)
        props_a = propagators(model, 1, dtype, ia)
        rfc_a = refractory_steps[ia]

        def step(c, k):
            va, ga, sa = c
            events, i_ext = drive.inputs_at(key, w * d + k, replay_w[k], model.dt_ms)
            ev_a = jnp.zeros((n_act,), dtype).at[in_slot].add(events.ravel(), mode="drop")
            ie_a = jnp.zeros((n_act,), dtype).at[in_slot].add(i_ext.ravel(), mode="drop")
            va, ga, sa, spk = model.step(va, ga, sa, rfc_a, arrivals[k], ev_a, ie_a, props_a, **p_a)
            return (va, ga, sa), (spk & live_a, va[rec_slot], ga[rec_slot])

        start = (s.v.ravel()[act_c], s.g.ravel()[act_c], s.since.ravel()[act_c])
        (va, ga, sa), (spk, v_rec, g_rec) = jax.lax.scan(
            step, start, jnp.arange(d, dtype=jnp.int32)
        )

        v_new = v_jump.ravel().at[act].set(va, mode="drop").reshape(n_trials, n)
        g_new = g_jump.ravel().at[act].set(ga, mode="drop").reshape(n_trials, n)
        since_new = since_jump.ravel().at[act].set(sa, mode="drop").reshape(n_trials, n)

        # 5. this window's spikes, as a list ordered by (step, trial, neuron)
        pos, n_spikes = compact(spk.ravel(), n_spk)
        live_pos = pos < d * n_act
        k_sp = jnp.where(live_pos, pos // n_act, 0).astype(jnp.int32)
        flat_sp = jnp.where(live_pos, act[jnp.minimum(pos % n_act, n_act - 1)], none)
        counts = jnp.stack([n_active, n_spikes, n_events.astype(jnp.int32)])
        return WindowedState(v_new, g_new, since_new, flat_sp, k_sp), (
            flat_sp,
            k_sp,
            counts,
            v_rec,
            g_rec,
        )

    windows = w0 + jnp.arange(replay.shape[0], dtype=jnp.int32)
    state, (flat, k, counts, v_rec, g_rec) = jax.lax.scan(window, state, (windows, replay))
    return state, flat, k, counts, v_rec, g_rec


def always_active_mask(n_neurons: int, input_idx, rec_idx) -> jnp.ndarray:
    m = jnp.zeros((n_neurons,), bool)
    return (
        m.at[jnp.asarray(input_idx, jnp.int32)]
        .set(True)
        .at[jnp.asarray(rec_idx, jnp.int32)]
        .set(True)
    )


__all__ = [
    "Budgets",
    "WindowedState",
    "always_active_mask",
    "at",
    "windowed_chunk",
    "windowed_init",
]
