"""Reference stepper: every neuron and every connection at every step (plain JAX).

It runs any neuron model through the model interface (``prepare``, ``init_state``,
``advance``, ``observe``) and any synapse kind (delayed events, graded chemical, gap
junctions), so it is the one stepper every model has; the fast LIF steppers are tested
against it. Per step, in Brian2's order for LIF:

1. every synapse kind delivers its input from the state at the step's start (delayed events:
   what was sent ``delay`` steps ago; graded synapses: ``w f(V)``; gap junctions: the
   neighbours' voltages), removed neurons receiving nothing;
2. the drive adds its input events and currents;
3. the model advances one step;
4. the spikes it emitted (silenced and removed neurons' zeroed) enter the delayed synapses.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from brainsim.models import AbstractNeuron, NeuronInput
from brainsim.sim._protocol import Drive

# block of steps whose Poisson input is drawn at once for a model without a synaptic delay
NOISE_BLOCK_STEPS = 16


class ReferenceState(eqx.Module):
    neurons: Any
    synapses: tuple


def noise_block_steps(model: AbstractNeuron) -> int:
    """Steps per Poisson block: the synaptic delay for LIF (as every LIF stepper draws
    it, so that all of them see the same input events), else a fixed block."""
    return getattr(model, "delay_steps", NOISE_BLOCK_STEPS)


def reference_init(model, synapses: tuple, n_trials: int, n_neurons: int, dtype):
    return ReferenceState(
        model.init_state(n_trials, n_neurons, dtype),
        tuple(s.init_state(n_trials, n_neurons, dtype) for s in synapses),
    )


@eqx.filter_jit
def reference_chunk(
    model: AbstractNeuron,
    aux: Any,
    synapses: tuple,
    drive: Drive,
    state: ReferenceState,
    t0: Int[Array, ""],
    replay: Float[Array, "steps trials inputs_or_1"],
    key: Array,
    rec_idx: Int[Array, " recorded"],
):
    """Advance ``replay.shape[0]`` steps from absolute step ``t0``.

    Returns ``(state, spikes [steps, trials, neurons] bool or None, traces)``; ``traces``
    maps each of the model's trace names to [steps, trials, recorded]."""
    block = noise_block_steps(model)
    silent = drive.outputs_cut()
    reads = {s.reads for s in synapses}

    def body(s: ReferenceState, xs):
        t, replay_t = xs
        like = model.voltage(s.neurons)
        pre = {"spikes": None}
        if "voltage" in reads:
            pre["voltage"] = like
        if "output" in reads:
            out = model.output(s.neurons)
            pre["output"] = out if silent is None else jnp.where(silent, 0, out)
        channels = {"current": 0.0, "arrivals": 0.0, "events": 0.0, "gap": 0.0}
        for syn, st in zip(synapses, s.synapses, strict=True):
            channels[syn.channel] = channels[syn.channel] + drive.incoming(
                syn.deliver(st, t, pre[syn.reads])
            )
        events, current = drive.dense_inputs_at(key, t, replay_t, model.dt_ms, block, like)
        channels["events"] = channels["events"] + events
        channels["current"] = channels["current"] + current
        neurons, spk = model.advance(aux, s.neurons, NeuronInput(**channels))
        sent = spk
        if spk is not None and silent is not None:
            sent = spk & ~silent
        syn_states = tuple(
            syn.update(st, t, sent) if syn.reads == "spikes" else st
            for syn, st in zip(synapses, s.synapses, strict=True)
        )
        obs = model.observe(neurons)
        traces = {k: obs[k][:, rec_idx] for k in model.trace_names}
        return ReferenceState(neurons, syn_states), (spk, traces)

    steps = t0 + jnp.arange(replay.shape[0], dtype=jnp.int32)
    state, (spikes, traces) = jax.lax.scan(body, state, (steps, replay))
    return state, spikes, traces
