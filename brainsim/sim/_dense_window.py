"""Stepper for dense activity: every neuron stepped every dt, synapses event-driven per window.

When most neurons are active (every neuron driven, as in the dense-activity workload), the
windowed stepper's lists cover the whole network and its gathers and scatters cost more
than stepping everyone: this stepper holds the state as plain [trials, neurons] arrays and
steps all of it with the model's step function, while synaptic delivery stays event-driven
and once per delay window, as in :mod:`brainsim.sim._windowed` (the previous window's spikes
expanded over their CSR rows into a [delay, trials, neurons] table of arrivals). Work per
step grows with trials x neurons, per window with the events: the reference kernel's
arithmetic without its sweep over every connection every step, and the same spikes.

It drives the model through its interface (``prepare``, ``init_state``, ``advance``,
``observe``), so it runs any spiking model with delayed event synapses (LIF, PQN). On the
CPU, a LIF model whose time constants all neurons share, driven by Poisson stream 2, runs
its whole chunk in one C++ call instead (``brainsim.kernels.dense_lif_chunk``: the same
equations in the same operation order, and the same delivery order as the native delivery;
tests hold the two equal bit for bit); :func:`fused_supported` says when.

Budgets: only ``spikes`` and ``events`` are used (the other counts are reported as 0).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from brainsim.kernels import (
    compact_sparse,
    dense_deliver,
    dense_lif_chunk,
    scatter_to,
)
from brainsim.models import LIF, AbstractNeuron, LIFState, NeuronInput
from brainsim.sim._chunk import ChunkOutput, KernelCounts
from brainsim.sim._network import Network
from brainsim.sim._params import native_neuron_consts
from brainsim.sim._protocol import Drive
from brainsim.sim._windowed import Budgets, window_events


class DenseWindowState(eqx.Module):
    """Every neuron's state at a window start, and the previous window's spikes (flat entry
    ``trial * n + neuron``, ``trials x neurons`` = padding; step within the window)."""

    neurons: Any
    pending_flat: Int[Array, " spikes"]
    pending_k: Int[Array, " spikes"]

    def with_budgets(self, budgets: Budgets, none: int) -> DenseWindowState:
        """The same state with its spike list padded to ``budgets.spikes``."""
        cur = self.pending_flat.shape[0]
        if budgets.spikes == cur:
            return self
        pad = budgets.spikes - cur
        return DenseWindowState(
            self.neurons,
            jnp.concatenate([self.pending_flat, jnp.full((pad,), none, jnp.int32)]),
            jnp.concatenate([self.pending_k, jnp.zeros((pad,), jnp.int32)]),
        )


def dense_window_init(
    model: AbstractNeuron, n_trials: int, n_neurons: int, dtype, budgets: Budgets
):
    """Everyone at rest (the model's ``init_state``)."""
    none = n_trials * n_neurons
    # (one compiled program for the whole start, not one per eager jnp.zeros and jnp.full)
    return _init(model, n_trials, n_neurons, dtype, budgets.spikes, none)


@eqx.filter_jit
def _init(model, n_trials: int, n_neurons: int, dtype, spikes: int, none: int):
    return DenseWindowState(
        model.init_state(n_trials, n_neurons, dtype),
        jnp.full((spikes,), none, jnp.int32),
        jnp.zeros((spikes,), jnp.int32),
    )


def fused_supported(model: AbstractNeuron, aux: Any, drive: Drive) -> bool:
    """Whether the native chunk (``dense_lif_chunk``) covers this run: the LIF model with
    time constants shared by every neuron, no gap junctions, Poisson stream 2."""
    return (
        isinstance(model, LIF)
        and aux.gap_leak is None
        and all(jnp.ndim(p) == 0 for p in aux.props)
        and drive.stream == 2
    )


@eqx.filter_jit
def dense_lif_native_chunk(
    model: LIF,
    aux: Any,
    net: Network,
    drive: Drive,
    state: DenseWindowState,
    w0: Int[Array, ""],
    replay_offsets: Int[Array, " windows_x_trials_plus_1"],
    replay_events: Int[Array, "events 2"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
    budgets: Budgets,
) -> ChunkOutput:
    """:func:`dense_window_chunk` for the LIF model in one native call (CPU; see
    :func:`fused_supported`), the chunk's replayed events given sparse
    (:meth:`brainsim.sim.Protocol.replay_windows`): their number of windows sets the
    chunk's."""
    neurons = state.neurons
    dtype = neurons.u.dtype
    n_trials, n = neurons.u.shape
    d = model.delay_steps
    u, g, since, flat, k, counts, u_rec, g_rec = dense_lif_chunk(
        neurons.u,
        neurons.g,
        neurons.since,
        state.pending_flat,
        state.pending_k,
        net.indptr,
        net.indices,
        net.counts,
        jnp.broadcast_to(jnp.asarray(model.synapse_weight(), dtype), (n,)),
        *drive.flat_masks(),
        aux.refractory_steps,
        native_neuron_consts(aux.params, n, dtype),
        jnp.stack(aux.props),
        jnp.reshape(w0, (1,)).astype(jnp.int32),
        drive.input_idx,
        *drive.native_args(key, d, replay_offsets, replay_events),
        rec_idx,
        n_windows=(replay_offsets.shape[0] - 1) // n_trials,
        spike_budget=budgets.spikes,
    )
    zero = jnp.zeros_like(counts[:, 0])
    v_0 = jnp.broadcast_to(jnp.asarray(model.v_0_mv, dtype), (n,))[rec_idx]
    return ChunkOutput(
        DenseWindowState(LIFState(u, g, since), flat[-1], k[-1]),
        flat,
        k,
        KernelCounts(zero, zero, counts[:, 0], counts[:, 1], zero),
        {"v_mv": u_rec + v_0, "g_mv": g_rec},
    )


@eqx.filter_jit
def dense_window_chunk(
    model: AbstractNeuron,
    aux: Any,
    net: Network,
    drive: Drive,
    state: DenseWindowState,
    w0: Int[Array, ""],
    replay: Float[Array, "windows delay trials inputs_or_1"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
    budgets: Budgets,
    every_neuron_input: bool = False,
    native: bool = False,
):
    """Advance ``replay.shape[0]`` windows from window ``w0``; returns a
    :class:`brainsim.sim._chunk.ChunkOutput` as
    :func:`brainsim.sim._windowed.windowed_chunk` (traces: the model's ``trace_names`` ->
    [windows, delay, trials, recorded]). ``aux``: ``model.prepare``'s
    constants. ``every_neuron_input``: the drive's
    inputs are exactly neurons 0..n-1 in order (their arrays need no mapping). ``native``
    (CPU): the arrivals come from the C++ kernel ``brainsim.kernels.dense_deliver`` (no
    event budget), else from the plain-JAX event list and scatter (the whole chunk in
    one native call: :func:`dense_lif_native_chunk`)."""
    like = model.voltage(state.neurons)
    dtype = like.dtype
    n_trials, n = like.shape
    none = n_trials * n
    d = model.delay_steps
    n_spk, n_ev = budgets.spikes, budgets.events
    w_syn_pre = jnp.broadcast_to(jnp.asarray(model.synapse_weight(), dtype), (n,))
    n_in = drive.input_idx.shape[0]
    # each neuron's position among the inputs (n_in: not an input)
    input_pos = (
        jnp.full((n,), n_in, jnp.int32).at[drive.input_idx].set(jnp.arange(n_in, dtype=jnp.int32))
    )

    silent = drive.outputs_cut()
    flat_mask = lambda m: None if m is None else m.ravel()  # noqa: E731

    def window(s: DenseWindowState, xs):
        w, replay_w = xs
        # the previous window's spikes -> this window's arrivals, every (step, trial, neuron)
        if native:
            arrivals, n_events = dense_deliver(
                s.pending_flat,
                s.pending_k,
                net.indptr,
                net.indices,
                net.counts,
                w_syn_pre,
                flat_mask(silent),
                flat_mask(drive.removed),
                n_neurons=n,
                delay_steps=d,
                entries=none,
            )
            arrivals, n_events = arrivals.reshape(d, n_trials, n), n_events[0]
        else:
            ev_flat, ev_k, ev_w, n_events = window_events(
                s.pending_flat, s.pending_k, net, drive, w_syn_pre, n_ev
            )
            at = jnp.where(ev_flat < none, ev_k * none + ev_flat, d * none)
            arrivals = scatter_to(d * none, at, ev_w).reshape(d, n_trials, n)
        events, i_ext = drive.block_inputs(key, w, replay_w, model.dt_ms, d)

        # onto every neuron: a gather (position n_in reads an appended zero column), unless
        # the inputs are all the neurons in order
        ext = jnp.stack([events, i_ext], axis=0)
        if not every_neuron_input:
            ext = jnp.concatenate([ext, jnp.zeros((*ext.shape[:-1], 1), ext.dtype)], axis=-1)
            ext = jnp.take(ext, input_pos, axis=-1)  # [2, d, trials, neurons]

        def step(c, xs):
            arrive_k, ev_full, ie_full = xs
            inputs = NeuronInput(current=ie_full, arrivals=arrive_k, events=ev_full)
            c, spk = model.advance(aux, c, inputs)
            obs = model.observe(c)
            return c, (spk, {k: obs[k][:, rec_idx] for k in model.trace_names})

        neurons, (spk, traces) = jax.lax.scan(step, s.neurons, (arrivals, ext[0], ext[1]))
        # this window's spikes, ordered by step, then trial, then neuron
        pos, n_spikes = compact_sparse(spk.reshape(-1), n_spk)
        live = pos < d * none
        k_sp = jnp.where(live, pos // none, 0).astype(jnp.int32)
        flat_sp = jnp.where(live, pos % none, none).astype(jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        counts = jnp.stack([zero, zero, n_spikes, n_events.astype(jnp.int32), zero])
        new = DenseWindowState(neurons, flat_sp, k_sp)
        return new, (flat_sp, k_sp, counts, traces)

    windows = w0 + jnp.arange(replay.shape[0], dtype=jnp.int32)
    state, (flat, k, counts, traces) = jax.lax.scan(window, state, (windows, replay))
    return ChunkOutput(state, flat, k, KernelCounts.from_stacked(counts), traces)


__all__ = [
    "DenseWindowState",
    "dense_lif_native_chunk",
    "dense_window_chunk",
    "dense_window_init",
    "fused_supported",
]
