"""Fast stepper: event-driven propagation once per delay window, over active neurons only.

Why it is exact. Every synapse has the same delay of D steps, so the input that arrives in
the window of steps ``[wD, wD + D)`` comes from spikes of the previous window, all known when
the window starts. Within a window, neurons do not influence each other. So per window:

1. the previous window's spikes are expanded over their CSR rows into synaptic events
   (event-driven: work grows with the spikes' synapses, not with all synapses);
2. a neuron is *active* in the window when it receives an event, is an input or recorded
   neuron, or was left *awake* by its last active window: still refractory, or able to reach
   threshold on its own (``max(v - v_0, 0) + max(g, 0) x peak > v_th - v_0``, where
   ``peak`` is the largest voltage a unit of g can still produce,
   :meth:`LIF.psp_peak_factor`);
3. active neurons are stepped D times, one dt at a time, with the model's step function.
   Every other neuron has no input, is not refractory and cannot spike, so it follows the
   exact linear solution; it is not touched at all: its state stays as stored, with the
   window it is valid for, and is brought forward in one exact jump (any number of steps)
   when it next becomes active.

Work per window therefore grows with the number of active neurons and events, not with the
size of the network. The jumps equal the single steps up to floating-point rounding, so
spikes agree with the reference stepper except where a voltage lies within rounding of
the threshold.

Budgets: the active list, the spikes of a window and their synaptic events live in arrays of
fixed sizes (``Budgets``). The stepper reports the true counts; the engine re-runs a chunk
with larger budgets whenever a count exceeded its budget, so nothing is ever dropped.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from brainsim.kernels import compact, propagate_events
from brainsim.models import LIF, SINCE_MAX
from brainsim.sim._network import Network
from brainsim.sim._params import neuron_params, propagators
from brainsim.sim._protocol import Drive


@dataclasses.dataclass(frozen=True)
class Budgets:
    """Array sizes per window, summed over trials: active neurons (touched this window),
    stepped neurons (of those, the ones integrated one dt at a time), spikes, and synaptic
    events."""

    active: int
    stepped: int
    spikes: int
    events: int

    def grown(self, counts) -> Budgets:
        """Budgets that fit the given true counts (same order as the fields) with headroom.

        Sizes grow in steps of a quarter power of two: few distinct shapes (few
        recompilations) and at most ~20% padding work.
        """

        def fit(cur: int, need: int) -> int:
            if need <= cur:
                return cur
            target = max(1.2 * need, cur + 1)
            p = 2 ** int(np.floor(np.log2(target)))
            for m in (1.0, 1.25, 1.5, 1.75, 2.0):
                if p * m >= target:
                    return int(p * m)
            return 2 * p

        sizes = [fit(c, int(n)) for c, n in zip(dataclasses.astuple(self), counts, strict=True)]
        return Budgets(*sizes)

    def capped(self, entries: int) -> Budgets:
        """Active and stepped lists never need more than one slot per (trial, neuron)."""
        return dataclasses.replace(
            self, active=min(self.active, entries), stepped=min(self.stepped, entries)
        )


class WindowedState(eqx.Module):
    """Lazy network state: each (trial, neuron) holds v, g and steps-since-spike as of the
    start of window ``valid_from``; neurons untouched since then follow the exact linear
    solution and are brought forward when they next become active."""

    v: Float[Array, "trials neurons"]
    g: Float[Array, "trials neurons"]
    since: Int[Array, "trials neurons"]
    valid_from: Int[Array, "trials neurons"]
    # spikes of the previous window: flat index trial * n + neuron (n_trials * n = none),
    # and step within that window
    pending_flat: Int[Array, " spikes"]
    pending_k: Int[Array, " spikes"]
    # neurons the previous window left awake (refractory, or able to reach threshold)
    awake_flat: Int[Array, " active"]

    def with_budgets(self, budgets: Budgets, none: int) -> WindowedState:
        """The same state with its lists padded (last axis) to the given budgets; ``none``
        is the list sentinel (trials x neurons of one shard)."""

        def pad(x, size, fill):
            cur = x.shape[-1]
            if size == cur:
                return x
            out = jnp.full((*x.shape[:-1], size), fill, jnp.int32)
            return out.at[..., :cur].set(x)

        return dataclasses.replace(
            self,
            pending_flat=pad(self.pending_flat, budgets.spikes, none),
            pending_k=pad(self.pending_k, budgets.spikes, 0),
            awake_flat=pad(self.awake_flat, budgets.active, none),
        )


def windowed_init(
    model: LIF, n_trials: int, n_neurons: int, dtype, budgets: Budgets, n_shards: int = 1
) -> WindowedState:
    """Everyone at rest. With ``n_shards`` > 1 the trial axis is split in equal shards and
    the lists get a leading shard axis (their sentinel is one shard's trials x neurons)."""
    from brainsim.sim._state import initial_neurons

    v, g, since = initial_neurons(model, n_trials, n_neurons, dtype)
    none = n_trials // n_shards * n_neurons
    lead = () if n_shards == 1 else (n_shards,)
    return WindowedState(
        v,
        g,
        since,
        jnp.zeros((n_trials, n_neurons), jnp.int32),
        jnp.full((*lead, budgets.spikes), none, jnp.int32),
        jnp.zeros((*lead, budgets.spikes), jnp.int32),
        jnp.full((*lead, budgets.active), none, jnp.int32),
    )


@eqx.filter_jit
def windowed_chunk(
    model: LIF,
    net: Network,
    drive: Drive,
    refractory_steps: Int[Array, " neurons"],
    always_idx: Int[Array, " always"],
    state: WindowedState,
    w0: Int[Array, ""],
    replay: Float[Array, "windows delay trials inputs"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
    budgets: Budgets,
    peak: float,
):
    """Advance ``replay.shape[0]`` windows of ``model.delay_steps`` steps from window ``w0``.

    Returns ``(state, spikes_flat [windows, S], spikes_k [windows, S], counts [windows, 4],
    v_rec, g_rec [windows, D, trials, rec])``; ``counts`` holds the true numbers of active
    and stepped neurons, spikes and synaptic events of each window, to compare with the budgets.
    """
    dtype = state.v.dtype
    n_trials, n = state.v.shape
    none = n_trials * n
    d = model.delay_steps
    n_act, n_st = budgets.active, budgets.stepped
    n_spk, n_ev = budgets.spikes, budgets.events
    params = neuron_params(model, dtype)
    w_syn_pre = jnp.broadcast_to(params["w_syn"], (n,))
    silent = drive.outputs_cut()
    trial_base = jnp.arange(n_trials, dtype=jnp.int32)[:, None] * n
    input_flat = (trial_base + drive.input_idx[None, :]).ravel()
    rec_flat = trial_base + rec_idx[None, :]
    always_flat = (trial_base + always_idx[None, :]).ravel()
    tol = lambda p: 1e-4 * (jnp.abs(p["v_th"]) + 1.0)  # noqa: E731  (v_th is from rest)
    slot_of = lambda table, flat: jnp.where(  # noqa: E731
        flat < none, table[jnp.minimum(flat, none - 1)], n_act
    )

    def window(carry, xs):
        s, slot_table = carry
        w, replay_w = xs
        # 1. the previous window's spikes -> this window's synaptic events
        live_sp = s.pending_flat < none
        pend = jnp.minimum(s.pending_flat, none - 1)
        b_sp, i_sp = pend // n, pend % n
        if silent is not None:
            live_sp = live_sp & ~silent[b_sp, i_sp]
        post, src, wt_count, n_events = propagate_events(
            i_sp, live_sp, net.indptr, net.indices, net.counts, n_ev
        )
        live_ev = src >= 0
        src_c = jnp.maximum(src, 0)
        ev_flat = jnp.where(live_ev, b_sp[src_c] * n + post, none)
        ev_k = s.pending_k[src_c]
        ev_w = wt_count * w_syn_pre[i_sp[src_c]]
        if drive.removed is not None:
            ev_w = jnp.where(drive.removed.ravel()[jnp.minimum(ev_flat, none - 1)], 0, ev_w)

        # 2. the active set: awake neurons, event targets, inputs and recorded neurons,
        # deduplicated through a scratch table (each candidate writes its position; the
        # position that reads back its own entry is the one kept)
        cand = jnp.concatenate([s.awake_flat, ev_flat, always_flat])
        pos = jnp.arange(cand.shape[0], dtype=jnp.int32)
        slot_table = slot_table.at[cand].set(pos, mode="drop")
        first = (cand < none) & (slot_table[jnp.minimum(cand, none - 1)] == pos)
        chosen, n_active = compact(first, n_act)
        act = jnp.where(chosen < cand.shape[0], cand[jnp.minimum(chosen, cand.shape[0] - 1)], none)
        slot_table = slot_table.at[act].set(jnp.arange(n_act, dtype=jnp.int32), mode="drop")
        live_a = act < none
        act_c = jnp.minimum(act, none - 1)
        ia = act_c % n

        # 3. bring the active neurons forward from the window their state is valid for
        p_a = neuron_params(model, dtype, ia)
        lag = (w - s.valid_from.ravel()[act_c]) * d
        k_l, ks_l, c_l = propagators(model, lag, dtype, ia)
        u0 = s.v.ravel()[act_c]  # voltages are held as u = v - v_0 (see neuron_params)
        g0 = s.g.ravel()[act_c]
        moved = lag > 0
        va = jnp.where(moved, u0 + (g0 * c_l - u0 * k_l), u0)
        ga = jnp.where(moved, g0 - g0 * ks_l, g0)
        sa = jnp.minimum(s.since.ravel()[act_c] + lag, SINCE_MAX)
        rfc_a = refractory_steps[ia]

        # 4. a neuron that is not refractory and cannot reach threshold even if all its
        # excitatory input came at once takes the exact solution with its arrivals summed in;
        # the others are stepped one dt at a time
        ev_slot = slot_of(slot_table, ev_flat)
        rest = d - 1 - ev_k  # integration steps left after an arrival at step k
        _, ks_r, c_r = propagators(model, rest, dtype, jnp.minimum(ev_flat, none - 1) % n)
        u_in = jnp.zeros((n_act,), dtype).at[ev_slot].add(ev_w * c_r, mode="drop")
        g_in = jnp.zeros((n_act,), dtype).at[ev_slot].add(ev_w - ev_w * ks_r, mode="drop")
        exc_in = jnp.zeros((n_act,), dtype).at[ev_slot].add(jnp.maximum(ev_w, 0), mode="drop")
        forced = (
            jnp.zeros((n_act,), bool).at[slot_of(slot_table, always_flat)].set(True, mode="drop")
        )
        reach = jnp.maximum(va, 0) + (jnp.maximum(ga, 0) + exc_in) * peak
        stepped = live_a & (forced | (sa < rfc_a) | (reach > p_a["v_th"] - tol(p_a)))
        k_d, ks_d, c_d = propagators(model, d, dtype, ia)
        v_end = va + (ga * c_d - va * k_d) + u_in
        g_end = ga - ga * ks_d + g_in
        s_end = jnp.minimum(sa + d, SINCE_MAX)

        st_pos, n_stepped = compact(stepped, n_st)
        live_s = st_pos < n_act
        st_c = jnp.minimum(st_pos, n_act - 1)
        step_slot = (
            jnp.full((n_act + 1,), n_st, jnp.int32)
            .at[st_pos]
            .set(jnp.arange(n_st, dtype=jnp.int32), mode="drop")
        )
        arrivals = jnp.zeros((d, n_st), dtype).at[ev_k, step_slot[ev_slot]].add(ev_w, mode="drop")
        in_slot = step_slot[slot_of(slot_table, input_flat)]
        rec_slot = jnp.minimum(step_slot[slot_of(slot_table, rec_flat)], n_st - 1)
        i_st = ia[st_c]
        p_s = neuron_params(model, dtype, i_st)
        props_s = propagators(model, 1, dtype, i_st)
        rfc_s = rfc_a[st_c]

        def step(c, k):
            vs, gs, ss = c
            events, i_ext = drive.inputs_at(key, w * d + k, replay_w[k], model.dt_ms)
            ev_s = jnp.zeros((n_st,), dtype).at[in_slot].add(events.ravel(), mode="drop")
            ie_s = jnp.zeros((n_st,), dtype).at[in_slot].add(i_ext.ravel(), mode="drop")
            vs, gs, ss, spk = model.step(vs, gs, ss, rfc_s, arrivals[k], ev_s, ie_s, props_s, **p_s)
            return (vs, gs, ss), (spk & live_s, vs[rec_slot], gs[rec_slot])

        (vs, gs, ss), (spk, v_rec, g_rec) = jax.lax.scan(
            step, (va[st_c], ga[st_c], sa[st_c]), jnp.arange(d, dtype=jnp.int32)
        )
        st_write = jnp.where(live_s, st_pos, n_act)
        v_end = v_end.at[st_write].set(vs, mode="drop")
        g_end = g_end.at[st_write].set(gs, mode="drop")
        s_end = s_end.at[st_write].set(ss, mode="drop")

        shape = (n_trials, n)
        v_new = s.v.ravel().at[act].set(v_end, mode="drop").reshape(shape)
        g_new = s.g.ravel().at[act].set(g_end, mode="drop").reshape(shape)
        since_new = s.since.ravel().at[act].set(s_end, mode="drop").reshape(shape)
        valid_new = s.valid_from.ravel().at[act].set(w + 1, mode="drop").reshape(shape)
        could_fire = jnp.maximum(v_end, 0) + jnp.maximum(g_end, 0) * peak > p_a["v_th"] - tol(p_a)
        awake = live_a & ((s_end < rfc_a) | could_fire)
        awake_flat = jnp.where(awake, act, none)

        # 5. this window's spikes, as a list ordered by step, then active slot
        pos_sp, n_spikes = compact(spk.ravel(), n_spk)
        live_pos = pos_sp < d * n_st
        k_sp = jnp.where(live_pos, pos_sp // n_st, 0).astype(jnp.int32)
        flat_sp = jnp.where(live_pos, act[st_c[jnp.minimum(pos_sp % n_st, n_st - 1)]], none)
        counts = jnp.stack([n_active, n_stepped, n_spikes, n_events.astype(jnp.int32)])
        new = WindowedState(v_new, g_new, since_new, valid_new, flat_sp, k_sp, awake_flat)
        return (new, slot_table), (flat_sp, k_sp, counts, v_rec, g_rec)

    windows = w0 + jnp.arange(replay.shape[0], dtype=jnp.int32)
    # the scratch table's contents never matter: every entry read was written this window
    table = jnp.zeros((none,), jnp.int32)
    (state, _), (flat, k, counts, v_rec, g_rec) = jax.lax.scan(
        window, (state, table), (windows, replay)
    )
    return state, flat, k, counts, v_rec, g_rec


def always_active(input_idx, rec_idx) -> jnp.ndarray:
    """Neurons stepped in every window: inputs (their drive arrives any step) and recorded
    neurons (their traces are wanted every step)."""
    idx = np.union1d(np.asarray(input_idx, np.int64), np.asarray(rec_idx, np.int64))
    return jnp.asarray(idx, jnp.int32)


__all__ = ["Budgets", "WindowedState", "always_active", "windowed_chunk", "windowed_init"]
