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
3. an active neuron is stepped D times, one dt at a time, with the model's step function,
   when it is refractory, an input or recorded, or could reach threshold:
   ``max(u, 0) + max(g, 0) x c_g + sum of max(w, 0) x c_w > v_th - v_0``, where ``c(t)`` is
   the voltage a unit of g produces after t. In float32 the ``c`` factors are its peak
   (could ever reach threshold); in float64 they are its maxima over the steps left in the
   window (could cross within this window; much smaller: the window is 1.8 ms, the peak
   comes after ~9 ms), see ``window_bound`` in :func:`windowed_chunk`. The other active
   neurons take the exact solution with their arrivals summed in.
4. Every other neuron has no input, is not refractory and cannot spike, so it follows the
   exact linear solution; it is not touched at all: its state stays as stored, with the
   window it is valid for, and is brought forward in one exact jump (any number of steps)
   when it next becomes active.

Work per window therefore grows with the number of active neurons and events, not with the
size of the network. The jumps equal the single steps up to floating-point rounding, so
spikes agree with the reference stepper except where a voltage lies within rounding of
the threshold.

Budgets: the neuron lists, the spikes of a window and their synaptic events live in arrays of
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

from brainsim.kernels import (
    TRASH,
    compact,
    propagate_events,
    ranks,
    scatter_to,
    trash_index,
    window_deliver,
    windowed_lif_chunk,
)
from brainsim.models import LIF, SINCE_MAX
from brainsim.sim._chunk import ChunkOutput, KernelCounts
from brainsim.sim._network import Network
from brainsim.sim._params import native_neuron_consts, neuron_params, propagators
from brainsim.sim._protocol import Drive

# drive values (windows x steps x trials x inputs) up to which a chunk's input is drawn at once
PRECOMPUTED_DRIVE = 1 << 22


@dataclasses.dataclass(frozen=True)
class Budgets:
    """Array sizes per window, summed over trials: active neurons (touched this window),
    stepped neurons (of those, the ones integrated one dt at a time), spikes, synaptic
    events, and awake neurons (left active for the next window)."""

    active: int
    stepped: int
    spikes: int
    events: int
    awake: int

    def grown(self, counts, *, extrapolate: bool = True) -> Budgets:
        """Budgets that fit the given true counts (same order as the fields) with headroom.

        A list cut short also hides the work that follows from it (a truncated active set
        steps fewer neurons, which spike less and send fewer events), so after an overflow
        every count is extrapolated (unless ``extrapolate`` is False) by the largest overflow
        ratio (at most 4x): one re-run instead of a cascade of them, each a compilation.
        Sizes grow in steps of an eighth of a power of two: few distinct shapes, and padding
        work bounded by the 10% headroom plus at most 12.5%.
        """
        counts = np.asarray(counts, np.float64)
        ratio = float(np.max(counts / np.asarray(dataclasses.astuple(self), np.float64)))
        if extrapolate and ratio > 1:
            counts = counts * min(ratio, 4.0)

        def fit(cur: int, need: float) -> int:
            if need <= cur:
                return cur
            target = max(1.1 * need, cur + 1)
            p = 2 ** int(np.floor(np.log2(target)))
            for m in np.arange(8, 17) / 8:
                if p * m >= target:
                    return int(p * m)
            return 2 * p

        sizes = [fit(c, n) for c, n in zip(dataclasses.astuple(self), counts, strict=True)]
        return Budgets(*sizes)

    def capped(self, entries: int) -> Budgets:
        """Neuron lists never need more than one slot per (trial, neuron)."""
        return dataclasses.replace(
            self,
            active=min(self.active, entries),
            stepped=min(self.stepped, entries),
            awake=min(self.awake, entries),
        )


class WindowedState(eqx.Module):
    """Lazy network state, flat over (trial, neuron) entries ``trial * n + neuron``, followed
    by a trash region (``TRASH`` entries) that absorbs the writes of padding list entries.

    ``cells[entry]`` holds ``(u, g, since, valid_from)``: voltage from rest, synaptic
    conductance and steps since the last spike (an integer stored bit for bit, see
    :func:`pack_cells`) as of the start of window ``valid_from``; entries untouched since then
    follow the exact linear solution and are brought forward when they next become active.
    One row per entry: each random access touches one 16-byte (32 in float64) row. With
    several shards every field has a leading shard axis."""

    cells: Float[Array, "entries 4"]
    # spikes of the previous window: flat entry (``none`` = padding), and step within it
    pending_flat: Int[Array, " spikes"]
    pending_k: Int[Array, " spikes"]
    # entries the previous window left awake (refractory, or able to reach threshold)
    awake_flat: Int[Array, " awake"]

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
            awake_flat=pad(self.awake_flat, budgets.awake, none),
        )


def _int_of(dtype):
    """The integer type as wide as ``dtype`` (the cells store integers bit for bit)."""
    return jnp.int32 if jnp.dtype(dtype).itemsize == 4 else jnp.int64


def pack_cells(u, g, since, valid_from):
    """Rows ``(u, g, since, valid_from)`` in the float type of ``u``; the two integers are
    stored as their bit patterns (exact; only ever moved, never computed with as floats)."""
    dtype = u.dtype
    ints = jnp.stack([since, valid_from], axis=-1).astype(_int_of(dtype))
    return jnp.concatenate(
        [jnp.stack([u, g], axis=-1), jax.lax.bitcast_convert_type(ints, dtype)], axis=-1
    )


def unpack_cells(cells):
    """``(u, g, since, valid_from)`` of rows made by :func:`pack_cells`."""
    ints = jax.lax.bitcast_convert_type(cells[..., 2:], _int_of(cells.dtype)).astype(jnp.int32)
    return cells[..., 0], cells[..., 1], ints[..., 0], ints[..., 1]


def windowed_init(
    model: LIF, n_trials: int, n_neurons: int, dtype, budgets: Budgets, n_shards: int = 1
) -> WindowedState:
    """Everyone at rest (u = 0, g = 0, never spiked). With ``n_shards`` > 1 the trials are
    split in equal shards and every field gets a leading shard axis (the sentinel ``none``
    is one shard's trials x neurons)."""
    none = n_trials // n_shards * n_neurons
    lead = () if n_shards == 1 else (n_shards,)
    # made on the host (the rows of pack_cells(0, 0, SINCE_MAX, 0)): eager jnp operations
    # would each compile a program
    dt = np.dtype(dtype)
    cells = np.zeros((*lead, none + TRASH, 4), dt)
    cells[..., 2] = np.array(SINCE_MAX, np.int32 if dt.itemsize == 4 else np.int64).view(dt)
    return WindowedState(
        jax.device_put(cells),
        jax.device_put(np.full((*lead, budgets.spikes), none, np.int32)),
        jax.device_put(np.zeros((*lead, budgets.spikes), np.int32)),
        jax.device_put(np.full((*lead, budgets.awake), none, np.int32)),
    )


def jump_tables(model: LIF, dtype):
    """Exact-solution constants as small tables, computed in float64 on the host, when the
    time constants are the same for every neuron (else ``(None, None)``: computed per entry).

    Returns ``(lag, arrival, c_window)``: ``lag[L]`` = ``(k_m, k_s, c)`` over ``L`` whole
    windows (the last row is the limit 1, 1, 0 exactly in ``dtype``: longer lags use it);
    ``arrival[k]`` = ``(k_m, k_s, c, c_max)`` over the ``D - 1 - k`` steps left after an
    arrival at step ``k``, ``c_max`` the largest ``c`` over those steps; ``c_window`` the
    largest ``c`` over the ``D`` steps of a window (``c`` is the voltage a unit of g
    produces: these bound how far a neuron can rise within a window)."""
    taus = (model.tau_m_ms, model.tau_syn_ms)
    if any(isinstance(x, jax.core.Tracer) or np.ndim(x) != 0 for x in taus):
        return None, None, None
    d = model.delay_steps

    def table(steps):  # host arrays: concrete constants even while tracing
        return model.propagator_table(steps, dtype)

    c_max = np.maximum.accumulate(table(np.arange(d + 1))[:, 2])
    rest = np.arange(d - 1, -1, -1)
    arrival = jnp.asarray(np.concatenate([table(rest), c_max[rest, None]], axis=1))
    c_window = float(c_max[d])
    tiny = float(np.finfo(dtype).smallest_subnormal)
    tau_max = max(float(np.asarray(t)) for t in taus)
    windows = int(np.ceil(-np.log(tiny) * tau_max / (d * model.dt_ms))) + 2
    while windows <= 2**16:
        lag = table(np.arange(windows) * d)
        if np.array_equal(lag[-1], np.array([1, 1, 0], lag.dtype)):
            return jnp.asarray(lag), arrival, c_window
        windows *= 2
    return None, arrival, c_window


def window_events(pending_flat, pending_k, net: Network, drive: Drive, w_syn_pre, budget: int):
    """The synaptic events that a window's spikes cause in the next window.

    ``pending_flat``/``pending_k``: the spikes as flat entries ``trial * n + neuron``
    (``trials x n`` = padding) and their steps within the window. Spikes of silenced or
    removed neurons send nothing; events onto removed neurons weigh 0. Returns ``(flat,
    k, weight_mv, total)`` over ``budget`` slots: target entry (``trials x n`` for
    padding), arrival step within the window, weight (0 for padding) and the true number
    of events (may exceed the budget: then grow and retry)."""
    n = net.n_neurons
    none = drive.trial_ids.shape[0] * n
    live = pending_flat < none
    pend = jnp.minimum(pending_flat, none - 1)
    b_sp, i_sp = pend // n, pend % n
    silent = drive.outputs_cut()
    if silent is not None:
        live = live & ~silent[b_sp, i_sp]
    post, src, wt_count, total = propagate_events(
        i_sp, live, net.indptr, net.indices, net.counts, budget
    )
    src_c = jnp.maximum(src, 0)
    flat = jnp.where(src >= 0, (b_sp * n)[src_c] + post, none)
    weight = wt_count * w_syn_pre[i_sp][src_c]  # padding events weigh 0
    if drive.removed is not None:
        weight = jnp.where(drive.removed.ravel()[jnp.minimum(flat, none - 1)], 0, weight)
    return flat, pending_k[src_c], weight, total


def step_listed(model, inputs, start, i_st, rfc_s, live_s, arrivals, in_slot, rec_slot):
    """Step the listed entries D times, one dt at a time, with the model's step function.

    ``inputs``: the window's ``(events, i_ext)`` of the drive, each [D, trials, inputs]
    (:meth:`Drive.block_inputs`). ``start``: the entries' ``(u, g, since)`` at the start of
    the window; ``i_st`` their neuron indices, ``rfc_s`` refractory steps, ``live_s`` which
    list slots are real; ``arrivals`` [D, slots] synaptic input per step; ``in_slot`` the
    slot of every (trial, input) of the drive (``>= slots``: not listed), ``rec_slot`` of
    every (trial, recorded neuron).
    Returns ``(u, g, since)`` at the end, spikes [D, slots] and the recorded v, g [D, ...]."""
    dtype = start[0].dtype
    d = model.delay_steps
    n_st = i_st.shape[0]
    p_s = neuron_params(model, dtype, i_st)
    props_s = propagators(model, 1, dtype, i_st)
    # input events and currents of the window, onto the stepped slots
    events, i_ext = inputs
    ext = jnp.stack([events.reshape(d, -1), i_ext.reshape(d, -1)], axis=2)
    ext = jax.vmap(lambda e: scatter_to(n_st, in_slot, e))(ext)

    def step(c, xs):
        vs, gs, ss = c
        arrive_k, ext_k = xs
        vs, gs, ss, spk = model.step(
            vs, gs, ss, rfc_s, arrive_k, ext_k[:, 0], ext_k[:, 1], props_s, **p_s
        )
        return (vs, gs, ss), (spk & live_s, vs[rec_slot], gs[rec_slot])

    (vs, gs, ss), (spk, v_rec, g_rec) = jax.lax.scan(step, start, (arrivals, ext))
    return vs, gs, ss, spk, v_rec, g_rec


def spike_list(spk, entry_of_slot, budget: int, none: int):
    """A window's spikes [D, slots] as a list ordered by step, then slot: ``(flat, k,
    count)``, the flat entry (``none`` for padding) and step of each, over ``budget`` slots,
    and the true count (may exceed the budget: then grow and retry)."""
    d, n_st = spk.shape
    pos, count = compact(spk.ravel(), budget)
    live = pos < d * n_st
    k = jnp.where(live, pos // n_st, 0).astype(jnp.int32)
    flat = jnp.where(live, entry_of_slot[jnp.minimum(pos % n_st, n_st - 1)], none)
    return flat, k, count


def native_supported(model: LIF, dtype) -> bool:
    """Whether the native CPU window kernel covers this model: time constants and
    neuron parameters shared by every neuron (``w_syn`` may differ per neuron)."""
    lag, _, _ = jump_tables(model, dtype)
    scalars = [v for k, v in neuron_params(model, dtype).items() if k != "w_syn"]
    return lag is not None and all(
        jnp.ndim(v) == 0 and not isinstance(v, jax.core.Tracer) for v in scalars
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
    replay: Float[Array, "windows delay trials inputs_or_1"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
    budgets: Budgets,
    peak: float,
    native: bool = False,
):
    """Advance ``replay.shape[0]`` windows of ``model.delay_steps`` steps from window ``w0``.

    Returns a :class:`brainsim.sim._chunk.ChunkOutput`: the state, the spikes of each window
    (flat entries and steps), the true numbers of active and stepped neurons, spikes,
    synaptic events and awake neurons of each window (:class:`KernelCounts`, to compare
    with the budgets) and the recorded traces ``u_mv`` (= v - v_0) and ``g_mv`` [windows, D,
    trials, rec].

    With ``native`` (CPU; see :func:`native_supported`) steps 1-4 run as one C++ kernel
    (``brainsim.kernels.window_deliver``) and only the stepping stays in JAX; the active
    and event lists then have no size limit (their budgets are not used).
    """
    dtype = state.cells.dtype
    n = net.n_neurons
    none = state.cells.shape[0] - TRASH
    n_trials = none // n
    d = model.delay_steps
    n_act, n_st = budgets.active, budgets.stepped
    n_spk, n_ev = budgets.spikes, budgets.events
    params = neuron_params(model, dtype)
    w_syn_pre = jnp.broadcast_to(params["w_syn"], (n,))
    n_always = always_idx.shape[0]
    always_flat, input_pos, rec_pos = always_positions(n_trials, n, always_idx, drive, rec_idx)
    lag_table, arrival_table, c_window, window_bound = stepping_bound(model, dtype, peak)
    if native and lag_table is None:
        raise ValueError("the native window kernel needs time constants shared by all neurons")
    tol = threshold_tolerance

    def stays_awake(live, v, g, since, rfc, p):
        """Entries left active for the next window: still refractory, or able to reach
        threshold on their own (the native kernel applies the same rule to the entries it
        jumps)."""
        could_fire = jnp.maximum(v, 0) + jnp.maximum(g, 0) * peak > p["v_th"] - tol(p)
        return live & ((since < rfc) | could_fire)

    def window_inputs(w, replay_w, pre_w):
        """The drive of window ``w``: drawn beforehand for the chunk, or now."""
        if pre_w is not None:
            return pre_w
        return drive.block_inputs(key, w, replay_w, model.dt_ms, d)

    def window(carry, xs):
        s, table = carry
        w, replay_w, pre_w = xs
        # 1. the previous window's spikes -> this window's synaptic events
        ev_flat, ev_k, ev_w, n_events = window_events(
            s.pending_flat, s.pending_k, net, drive, w_syn_pre, n_ev
        )

        # 2. the active set: awake neurons, event targets, inputs and recorded neurons,
        # deduplicated through a scratch table (each candidate writes its position; the
        # position that reads back its own entry stands for the neuron; every candidate's
        # slot is the rank of that position)
        cand = jnp.concatenate([s.awake_flat, ev_flat, always_flat])
        n_cand = cand.shape[0]
        pos = jnp.arange(n_cand, dtype=jnp.int32)
        table = table.at[trash_index(cand, none)].set(pos, mode="clip")
        winner = table[cand]
        first = (cand < none) & (winner == pos)
        rank, n_active = ranks(first)
        chosen, _ = compact(first, n_act, rank)
        act = jnp.where(chosen < n_cand, cand[jnp.minimum(chosen, n_cand - 1)], none)
        cand_slot = jnp.where(cand < none, jnp.minimum(rank[winner], n_act), n_act)
        n_aw = s.awake_flat.shape[0]
        ev_slot = cand_slot[n_aw : n_aw + n_ev]
        always_slot = cand_slot[n_aw + n_ev :].reshape(n_trials, n_always)
        live_a = act < none
        ia = jnp.minimum(act, none - 1) % n

        # 3. bring the active neurons forward from the window their state is valid for
        p_a = neuron_params(model, dtype, ia)
        # voltages are held as u = v - v_0 (see neuron_params); padding reads the trash
        u0, g0, since0, valid0 = unpack_cells(s.cells[act])
        lag_w = w - valid0
        if lag_table is None:
            k_l, ks_l, c_l = propagators(model, lag_w * d, dtype, ia)
        else:
            k_l, ks_l, c_l = lag_table[jnp.minimum(lag_w, lag_table.shape[0] - 1)].T
        moved = lag_w > 0
        va = jnp.where(moved, u0 + (g0 * c_l - u0 * k_l), u0)
        ga = jnp.where(moved, g0 - g0 * ks_l, g0)
        sa = jnp.minimum(since0 + lag_w * d, SINCE_MAX)
        rfc_a = refractory_steps[ia]

        # 4. a neuron that is not refractory and cannot reach threshold within the window
        # even if its excitatory input rose as fast as it can takes the exact solution with
        # its arrivals summed in; the others are stepped one dt at a time
        if arrival_table is None:
            post_c = jnp.minimum(ev_flat, none - 1) % n
            _, ks_r, c_r = propagators(model, d - 1 - ev_k, dtype, post_c)
        else:
            _, ks_r, c_r, c_rise = arrival_table[ev_k].T
        if not window_bound:
            c_rise = peak
        zero = jnp.zeros_like(ev_w)  # a fourth column: 16-byte rows scatter faster
        summed = jnp.stack(
            [ev_w * c_r, ev_w - ev_w * ks_r, jnp.maximum(ev_w, 0) * c_rise, zero], axis=1
        )
        u_in, g_in, exc_rise, _ = scatter_to(n_act, ev_slot, summed).T
        forced = scatter_to(n_act, always_slot.ravel(), True, fill=False, op="set")
        reach = jnp.maximum(va, 0) + jnp.maximum(ga, 0) * c_window + exc_rise
        stepped = live_a & (forced | (sa < rfc_a) | (reach > p_a["v_th"] - tol(p_a)))
        k_d, ks_d, c_d = propagators(model, d, dtype, ia)
        v_end = va + (ga * c_d - va * k_d) + u_in
        g_end = ga - ga * ks_d + g_in
        s_end = jnp.minimum(sa + d, SINCE_MAX)

        st_rank, n_stepped = ranks(stepped)
        st_pos, _ = compact(stepped, n_st, st_rank)
        live_s = st_pos < n_act
        st_c = jnp.minimum(st_pos, n_act - 1)
        # stepped slot of every active slot (n_st: not stepped), and of the padding slot
        step_slot = jnp.concatenate(
            [jnp.where(stepped, jnp.minimum(st_rank, n_st), n_st), jnp.full((1,), n_st, jnp.int32)]
        )
        ev_step = step_slot[ev_slot]
        at_step = jnp.where(ev_step < n_st, ev_k * n_st + ev_step, d * n_st)
        arrivals = scatter_to(d * n_st, at_step, ev_w).reshape(d, n_st)
        in_slot = step_slot[always_slot[:, input_pos]].ravel()
        rec_slot = jnp.minimum(step_slot[always_slot[:, rec_pos]], n_st - 1)
        i_st = ia[st_c]
        rfc_s = rfc_a[st_c]
        vs, gs, ss, spk, v_rec, g_rec = step_listed(
            model,
            window_inputs(w, replay_w, pre_w),
            (va[st_c], ga[st_c], sa[st_c]),
            i_st,
            rfc_s,
            live_s,
            arrivals,
            in_slot,
            rec_slot,
        )
        st_write = jnp.where(live_s, st_pos, n_act)
        v_end = v_end.at[st_write].set(vs, mode="drop")
        g_end = g_end.at[st_write].set(gs, mode="drop")
        s_end = s_end.at[st_write].set(ss, mode="drop")

        rows = pack_cells(v_end, g_end, s_end, jnp.broadcast_to(w + 1, s_end.shape))
        cells = s.cells.at[trash_index(act, none)].set(rows, mode="clip")
        awake = stays_awake(live_a, v_end, g_end, s_end, rfc_a, p_a)
        aw_pos, n_awake = compact(awake, budgets.awake)
        awake_flat = jnp.where(aw_pos < n_act, act[jnp.minimum(aw_pos, n_act - 1)], none)

        # 5. this window's spikes, as a list ordered by step, then stepped slot
        flat_sp, k_sp, n_spikes = spike_list(spk, act[st_c], n_spk, none)
        counts = jnp.stack([n_active, n_stepped, n_spikes, n_events.astype(jnp.int32), n_awake])
        new = WindowedState(cells, flat_sp, k_sp, awake_flat)
        return (new, table), (flat_sp, k_sp, counts, v_rec, g_rec)

    if native:  # the native kernel's constants and masks, the same for every window
        consts = delivery_consts(model, dtype, c_window, peak, window_bound)
        silent, removed = drive.flat_masks()
        # the always-active entries hold stepped slots 0..K-1 in the order of always_flat
        always_slot = jnp.arange(n_trials * n_always, dtype=jnp.int32).reshape(n_trials, -1)
        native_in_slot = always_slot[:, input_pos].ravel()
        native_rec_slot = jnp.minimum(always_slot[:, rec_pos], n_st - 1)

    def window_native(carry, xs):
        s, stamps = carry
        w, replay_w, pre_w = xs
        cells, stamps, st_flat, st_vg, st_since, arrivals, aw_jumped, cnt = window_deliver(
            s.cells,
            stamps,
            s.pending_flat,
            s.pending_k,
            s.awake_flat,
            always_flat,
            net.indptr,
            net.indices,
            net.counts,
            w_syn_pre,
            silent,
            removed,
            refractory_steps,
            lag_table,
            arrival_table,
            consts,
            w,
            n_neurons=n,
            stepped=n_st,
            awake=budgets.awake,
        )
        live_s = st_flat < none
        i_st = jnp.minimum(st_flat, none - 1) % n
        rfc_s = refractory_steps[i_st]
        vs, gs, ss, spk, v_rec, g_rec = step_listed(
            model,
            window_inputs(w, replay_w, pre_w),
            (st_vg[:, 0], st_vg[:, 1], st_since),
            i_st,
            rfc_s,
            live_s,
            arrivals,
            native_in_slot,
            native_rec_slot,
        )
        rows = pack_cells(vs, gs, ss, jnp.broadcast_to(w + 1, ss.shape))
        cells = cells.at[trash_index(st_flat, none)].set(rows, mode="clip")
        awake_st = stays_awake(live_s, vs, gs, ss, rfc_s, params)
        merged = jnp.concatenate([aw_jumped, jnp.where(awake_st, st_flat, none)])
        aw_pos, _ = compact(merged < none, budgets.awake)
        awake_flat = jnp.where(
            aw_pos < merged.shape[0], merged[jnp.minimum(aw_pos, merged.shape[0] - 1)], none
        )
        n_awake = cnt[3] + jnp.sum(awake_st, dtype=jnp.int32)

        flat_sp, k_sp, n_spikes = spike_list(spk, st_flat, n_spk, none)
        counts = jnp.stack([cnt[0], cnt[1], n_spikes, cnt[2], n_awake])
        new = WindowedState(cells, flat_sp, k_sp, awake_flat)
        return (new, stamps), (flat_sp, k_sp, counts, v_rec, g_rec)

    windows = w0 + jnp.arange(replay.shape[0], dtype=jnp.int32)
    # the drive of every window of the chunk in one batched draw when it is small: each
    # draw is a small XLA loop whose fixed cost dwarfs a window's few hundred numbers
    n_drive = replay.shape[0] * d * n_trials * drive.input_idx.shape[0]
    pre = None
    if n_drive <= PRECOMPUTED_DRIVE:
        pre = jax.vmap(lambda w, r: drive.block_inputs(key, w, r, model.dt_ms, d))(windows, replay)
    if native:
        # stamp table of the active set: (window + 1, slot) per entry; zeros are empty
        body, scratch = window_native, jnp.zeros((none, 2), jnp.int32)
    else:
        # the scratch table's contents never matter: every entry read was written this window
        body, scratch = window, jnp.zeros((none + TRASH,), jnp.int32)
    (state, _), (flat, k, counts, v_rec, g_rec) = jax.lax.scan(
        body, (state, scratch), (windows, replay, pre)
    )
    counts = KernelCounts.from_stacked(counts)
    return ChunkOutput(state, flat, k, counts, {"u_mv": v_rec, "g_mv": g_rec})


def native_chunk_supported(drive: Drive) -> bool:
    """Whether :func:`windowed_native_chunk` runs this drive (where the native window kernel
    runs, on one device): it draws Poisson stream 2 only."""
    return drive.stream == 2


def threshold_tolerance(p):
    """How far below threshold (``p["v_th"]``, from rest) a neuron counts as able to reach
    it (a margin for the rounding of the bounds)."""
    return 1e-4 * (jnp.abs(p["v_th"]) + 1.0)


def delivery_consts(model: LIF, dtype, c_window, peak: float, window_bound: bool):
    """The native delivery's constants: ``(v_th - tol, c_window, peak, k_d, ks_d, c_d,
    window_bound)`` (``v_th`` from rest, :func:`threshold_tolerance`; the window's
    propagators)."""
    p0 = neuron_params(model, dtype)
    k_d, ks_d, c_d = propagators(model, model.delay_steps, dtype)
    return jnp.stack(
        [p0["v_th"] - threshold_tolerance(p0), c_window, peak, k_d, ks_d, c_d, float(window_bound)]
    ).astype(dtype)


def stepping_bound(model: LIF, dtype, peak: float):
    """``(lag_table, arrival_table, c_window, window_bound)``: the exact-jump tables
    (:func:`jump_tables`) and the bound a neuron must be able to reach to be stepped.

    In float64 a neuron is stepped only if it can cross threshold within this window. In
    float32 it is stepped as soon as it could ever reach threshold (the PSP's peak): the
    trajectories that end near threshold are then integrated step by step like Brian2's,
    not jumped; jumps round differently, and in float32 a threshold tie can flip (measured
    against Brian2 float64 on the 20k network, input seed 3: 82.5% of its spikes with the
    window bound, 99.998% with the peak bound; float64 100% either way). Per-neuron time
    constants (no tables) use the peak bound too."""
    lag_table, arrival_table, c_window = jump_tables(model, dtype)
    window_bound = arrival_table is not None and jnp.dtype(dtype).itemsize == 8
    if not window_bound:
        c_window = peak
    return lag_table, arrival_table, c_window, window_bound


def always_positions(n_trials: int, n: int, always_idx, drive: Drive, rec_idx):
    """The always-active entries (trial x n + neuron, trial-major) and the positions of the
    inputs and recorded neurons among a trial's always-active neurons."""
    always_flat = (jnp.arange(n_trials, dtype=jnp.int32)[:, None] * n + always_idx).ravel()
    input_pos = jnp.searchsorted(always_idx, drive.input_idx).astype(jnp.int32)
    rec_pos = jnp.searchsorted(always_idx, rec_idx).astype(jnp.int32)
    return always_flat, input_pos, rec_pos


@eqx.filter_jit
def windowed_native_chunk(
    model: LIF,
    net: Network,
    drive: Drive,
    refractory_steps: Int[Array, " neurons"],
    always_idx: Int[Array, " always"],
    state: WindowedState,
    w0: Int[Array, ""],
    replay_offsets: Int[Array, " windows_x_trials_plus_1"],
    replay_events: Int[Array, "events 2"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
    budgets: Budgets,
    peak: float,
) -> ChunkOutput:
    """:func:`windowed_chunk` with ``native`` for every window of the chunk in one C++ call
    (``brainsim.kernels.windowed_lif_chunk``; one device, Poisson stream 2), the chunk's
    replayed events given sparse (:meth:`brainsim.sim.Protocol.replay_windows`): their
    number of windows sets the chunk's. Its lists of active and stepped neurons and of
    events have no size limit; ``budgets.spikes`` sizes each window's spike list in the
    output and ``budgets.awake`` the awake list of the state."""
    dtype = state.cells.dtype
    n = net.n_neurons
    none = state.cells.shape[0] - TRASH
    n_trials = none // n
    d = model.delay_steps
    p0 = neuron_params(model, dtype)
    lag_table, arrival_table, c_window, window_bound = stepping_bound(model, dtype, peak)
    if lag_table is None:
        raise ValueError("the native window kernel needs time constants shared by all neurons")
    always_flat, input_pos, rec_pos = always_positions(n_trials, n, always_idx, drive, rec_idx)
    cells, pend_flat, pend_k, awake, flat, k, counts, u_rec, g_rec = windowed_lif_chunk(
        state.cells,
        state.pending_flat,
        state.pending_k,
        state.awake_flat,
        always_flat,
        net.indptr,
        net.indices,
        net.counts,
        jnp.broadcast_to(p0["w_syn"], (n,)),
        *drive.flat_masks(),
        refractory_steps,
        lag_table,
        arrival_table,
        delivery_consts(model, dtype, c_window, peak, window_bound),
        jnp.stack(propagators(model, 1, dtype)),
        native_neuron_consts(p0, n, dtype),
        jnp.reshape(w0, (1,)).astype(jnp.int32),
        drive.input_idx,
        input_pos,
        rec_pos,
        *drive.native_args(key, d, replay_offsets, replay_events),
        n_neurons=n,
        n_windows=(replay_offsets.shape[0] - 1) // n_trials,
        spike_budget=budgets.spikes,
    )
    return ChunkOutput(
        WindowedState(cells, pend_flat, pend_k, awake),
        flat,
        k,
        KernelCounts.from_stacked(counts[:, :5]),
        {"u_mv": u_rec, "g_mv": g_rec},
        counts[:, 5],
    )


def always_active(input_idx, rec_idx) -> jnp.ndarray:
    """Neurons stepped in every window: inputs (their drive arrives any step) and recorded
    neurons (their traces are wanted every step)."""
    idx = np.union1d(np.asarray(input_idx, np.int64), np.asarray(rec_idx, np.int64))
    return jnp.asarray(idx, jnp.int32)


__all__ = [
    "Budgets",
    "WindowedState",
    "always_active",
    "jump_tables",
    "native_chunk_supported",
    "native_supported",
    "spike_list",
    "step_listed",
    "pack_cells",
    "unpack_cells",
    "windowed_chunk",
    "windowed_init",
    "windowed_native_chunk",
]
