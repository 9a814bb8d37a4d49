"""A differentiable run: the dense reference stepper with surrogate spikes and checkpointed BPTT.

The step is the model's own :meth:`~brainsim.models.AbstractNeuron.advance` (the method
every stepper calls) with ``spike_fn`` a :class:`Surrogate`: the
forward values equal a plain run's (same spikes as ``simulate(..., kernel="reference")``
given the same seed: the input noise comes from the same ``Drive.inputs_at``; tested bit
for bit, also with fitted weights and thresholds), and spikes are floats whose derivative
is the surrogate's. Fitted time constants are the one place where the arithmetic can differ:
their propagators are computed in the run's precision on the device instead of float64 on
the host, which can move a spike by rounding in float32. Synaptic input in flight sits in a ring
buffer of ``delay`` slots, as in :mod:`brainsim.sim._reference`.

Memory: time is a ``lax.scan`` over chunks of ``checkpoint_steps`` steps, each chunk under
``jax.checkpoint``; the backward pass keeps the state at chunk boundaries only and
recomputes one chunk at a time (with ``remat_steps`` also each step inside it, so that a
step's per-connection intermediates are never stored for a whole chunk). Stored state is
about ``(T / K + K) x (delay + 4) x trials x neurons`` numbers for T steps and chunks of K:
with K near sqrt(T) it grows as sqrt(T), not as T x N.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from brainsim.fit._events import (
    EventCapacity,
    propagate_events,
    propagate_events_native,
    step_counts,
)
from brainsim.fit._params import FitParams
from brainsim.fit._surrogate import COMPACT, Surrogate
from brainsim.kernels import propagate_dense, propagate_dense_matrix
from brainsim.models import LIF, NeuronInput
from brainsim.sim import Drive, Network

PROPAGATIONS = ("csr", "matrix", "events")


class DiffResult(eqx.Module):
    """What a differentiable run returns (every float carries the surrogate gradient).

    Attributes:
        counts: float [trials, neurons], spikes per trial and neuron.
        spikes: float [steps, trials, neurons] (0/1) when ``record_spikes``, else None.
        rec_spikes: float [steps, trials, recorded], spikes of the recorded neurons.
        rec_margin: float [steps, trials, recorded], ``v - v_th`` (mV) of the recorded
            neurons after each step's integration, before threshold and reset: a spike at
            step k means ``rec_margin[k] > 0`` (while not refractory).
        event_peaks: int32 [4] with ``propagation="events"`` in its JAX form: the most
            spike rows, their connections, near-threshold rows and theirs in one window of
            ``delay`` steps (:class:`brainsim.fit._events.EventCapacity` must hold them);
            None otherwise (the C++ form has no capacities).
    """

    counts: Float[Array, "trials neurons"]
    spikes: Float[Array, "steps trials neurons"] | None
    rec_spikes: Float[Array, "steps trials recorded"]
    rec_margin: Float[Array, "steps trials recorded"]
    event_peaks: Int[Array, " 4"] | None = None


class _State(eqx.Module):
    neurons: Any  # the model's state
    ring: Float[Array, "delay trials neurons"]
    counts: Float[Array, "trials neurons"]
    peaks: Int[Array, " 4"]


def differentiable_run(
    params: FitParams,
    base: LIF,
    net: Network,
    drive: Drive,
    refractory_steps: Int[Array, " neurons"],
    key: Array,
    n_steps: int,
    *,
    surrogate: Surrogate,
    replay: Float[Array, "steps trials inputs"] | None = None,
    record: Int[Array, " recorded"] | None = None,
    record_spikes: bool = False,
    checkpoint_steps: int = 100,
    remat_steps: bool = True,
    detach_reset: bool = True,
    propagation: str = "csr",
    capacity: EventCapacity | None = None,
    native: bool = False,
) -> DiffResult:
    """Run ``n_steps`` steps of all trials of ``drive`` from rest; differentiable in ``params``.

    Args:
        params: the fitted quantities (see :class:`FitParams`); the rest comes from ``base``.
        surrogate: the spike function; give it a ``scale`` near ``dt_ms / tau_m_ms``
            (:func:`brainsim.fit.default_scale`): with unit height every step of a threshold
            crossing gets a whole spike's gradient, and gradients explode through recurrent
            connections (measured: x1e10 over 50 ms on a 300-neuron network).
        net: a :class:`brainsim.sim.Network` built ``with_pre=True``.
        drive, refractory_steps: as for the reference kernel (``Protocol.device``,
            ``Protocol.refractory_steps``).
        key: the run's key, ``brainsim.sim.seed_key(seed)``: the same seed gives the same
            input events as ``simulate``.
        replay: replayed input events per step (``Protocol.replay_dense(0, n_steps)``).
        record: neuron indices whose spikes and ``v - v_th`` are returned at every step.
        record_spikes: also return every neuron's spikes at every step (small networks).
        checkpoint_steps: steps per checkpointed chunk (K above).
        remat_steps: recompute each step in the backward pass instead of storing its
            intermediates (needed for large networks; slower on small ones).
        detach_reset: no gradient through the reset's dependence on the spike (Zenke &
            Vogels 2021): the membrane keeps the gradient of its value before a spike
            step, and subthreshold steps are not pulled by the surrogate of a reset that
            did not happen. The forward values are the same either way.
        propagation: ``"csr"`` (``propagate_dense``, same arithmetic as the reference
            kernel), ``"matrix"`` (a dense [neurons, neurons] weight matrix, faster for a
            few thousand neurons or fewer) or ``"events"`` (:mod:`brainsim.fit._events`:
            forward and backward follow the spikes and the near-threshold neurons; needs a
            surrogate of compact support, ``straight_through``, and ``capacity``).
        capacity: the per-window sizes of ``"events"`` (default :class:`EventCapacity()`);
            check ``event_peaks`` of the result against it. Chunks are then a whole
            number of windows (``checkpoint_steps`` rounded to a multiple of the delay).
        native: with ``"events"``, propagate in C++ on the CPU
            (:func:`brainsim.fit._events.propagate_events_native`: no capacity, and
            ``event_peaks`` is None); see :func:`brainsim.fit._events.native_events_choice`.
    """
    if propagation not in PROPAGATIONS:
        raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
    if net.pre is None:
        raise ValueError("a differentiable run needs a Network built with with_pre=True")
    events = propagation == "events"
    if events and surrogate.kind not in COMPACT:
        raise ValueError(
            f'propagation "events" needs a surrogate whose derivative is zero away from '
            f"threshold ({', '.join(COMPACT)}), got {surrogate.kind!r}"
        )
    capacity = capacity or EventCapacity()
    if n_steps < 1 or checkpoint_steps < 1:
        raise ValueError(
            f"need n_steps >= 1 and checkpoint_steps >= 1, got {n_steps}, {checkpoint_steps}"
        )
    dtype = net.counts.dtype
    n = net.n_neurons
    b = drive.trial_ids.shape[0]
    model = params.model(base)
    d = model.delay_steps
    # the model's own per-run constants, with the protocol's refractory steps (its inputs
    # have none): the same `prepare` the plain steppers call
    aux = model.prepare(n, dtype, no_refractory=refractory_steps == 0)
    weight = params.weights(base, net.pre, net.counts)
    degree = net.indptr[1:] - net.indptr[:-1]
    if propagation == "matrix":
        matrix = jnp.zeros((n, n), dtype).at[net.pre, net.indices].add(weight)

        def propagate(s, near):
            return propagate_dense_matrix(s, matrix)
    else:

        def propagate(s, near):
            return propagate_dense(s, net.pre, net.indices, weight)

    bias = params.bias()
    silent = drive.outputs_cut()
    keep = None if silent is None else 1 - silent.astype(dtype)
    rec = jnp.zeros(0, jnp.int32) if record is None else jnp.asarray(record, jnp.int32)
    detached = _Detached(surrogate)

    def neuron_step(neurons, syn_in, t, replay_t):
        """The model's step: (new state, spikes, v - v_th before threshold)."""
        like = model.voltage(neurons)
        ev_full, ie_full = drive.dense_inputs_at(key, t, replay_t, model.dt_ms, d, like)
        if bias is not None:
            ie_full = ie_full + bias
        inputs = NeuronInput(current=ie_full, arrivals=syn_in, events=ev_full)
        margin = []

        def spike_fn(x):
            margin.append(x)
            return surrogate(x)

        new, spk = model.advance(aux, neurons, inputs, spike_fn=spike_fn)
        if detach_reset:
            # the same step with the spike's gradient stopped where it resets the state
            new, _ = model.advance(aux, neurons, inputs, spike_fn=detached)
        return new, spk, margin[0]

    def step(s: _State, xs):
        """One step; the ring buffer gets this step's propagated output (dense paths), or,
        with events, keeps the window's inputs while the step returns its output."""
        t, replay_t = xs
        slot = t % d
        neurons, spk, margin = neuron_step(s.neurons, drive.incoming(s.ring[slot]), t, replay_t)
        out = spk if keep is None else spk * keep
        ys = (spk[:, rec], margin[:, rec], spk if record_spikes else None)
        if events:
            # where the surrogate derivative is nonzero (and the output not cut)
            near = jax.lax.stop_gradient(surrogate.derivative(margin) != 0)
            near = near if keep is None else near & (keep != 0)
            return _State(neurons, s.ring, s.counts + spk, s.peaks), (ys, out, near)
        ring = s.ring.at[slot].set(propagate(out, None))
        return _State(neurons, ring, s.counts + spk, s.peaks), ys

    if remat_steps:
        step = jax.checkpoint(step)

    def window(s: _State, xs):
        """``d`` steps whose synaptic input was all sent in the previous window (the
        delay), then this window's outputs propagated at once: the next window's input."""
        s, (ys, outs, nears) = jax.lax.scan(step, s, xs)
        flat_out, flat_near = outs.reshape(-1, n), nears.reshape(-1, n)
        if native:
            sent = propagate_events_native(flat_out, flat_near, weight, net.indptr, net.indices)
            return _State(s.neurons, sent.reshape(d, b, n), s.counts, s.peaks), ys
        peaks = jnp.maximum(
            s.peaks, step_counts(jax.lax.stop_gradient(flat_out), flat_near, degree)
        )
        sent = propagate_events(flat_out, flat_near, weight, net.indptr, net.indices, capacity)
        return _State(s.neurons, sent.reshape(d, b, n), s.counts, peaks), ys

    unit = window if events else step  # what a chunk scans over
    per_unit = d if events else 1  # steps per unit

    @jax.checkpoint
    def chunk(s: _State, xs):
        return jax.lax.scan(unit, s, xs)

    zeros = jnp.zeros((b, n), dtype)
    state = _State(
        model.init_state(b, n, dtype), jnp.zeros((d, b, n), dtype), zeros, jnp.zeros(4, jnp.int32)
    )
    n_in = drive.input_idx.shape[0]
    if replay is None:
        replay = jnp.zeros((n_steps, b, n_in), dtype)
    steps = jnp.arange(n_steps, dtype=jnp.int32)
    n_units = n_steps // per_unit
    k = max(1, min(round(checkpoint_steps / per_unit), n_units)) if n_units else 0
    n_full = n_units // k if k else 0
    done = n_full * k * per_unit

    def units(lo, hi, count):
        shape = (count, per_unit) if events else (count,)
        return (steps[lo:hi].reshape(*shape), replay[lo:hi].reshape(*shape, b, -1))

    parts = []
    if n_full:
        xs = units(0, done, n_full * k)
        xs = jax.tree_util.tree_map(lambda x: x.reshape(n_full, k, *x.shape[1:]), xs)
        state, ys = jax.lax.scan(chunk, state, xs)
        parts.append(jax.tree_util.tree_map(_flat_steps, ys))
    rest = (n_units - n_full * k) * per_unit
    if rest:
        state, ys = chunk(state, units(done, done + rest, rest // per_unit))
        parts.append(jax.tree_util.tree_map(_flat_steps, ys))
        done += rest
    if done < n_steps:  # the steps after the last whole window: no propagation needed
        state, (ys, _, _) = jax.lax.scan(step, state, (steps[done:], replay[done:]))
        parts.append(ys)
    ys = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *parts)
    rec_spikes, rec_margin, spikes = ys
    peaks = state.peaks if events and not native else None
    return DiffResult(state.counts, spikes, rec_spikes, rec_margin, peaks)


def _flat_steps(y):
    """[..., trials, k] with every leading axis a step: [steps, trials, k] (k may be 0)."""
    return y.reshape(math.prod(y.shape[:-2]), *y.shape[-2:])


class _Detached(eqx.Module):
    surrogate: Surrogate

    def __call__(self, x):
        return jax.lax.stop_gradient(self.surrogate(x))
