"""The interface every neuron model implements, and the inputs a step receives.

A neuron model is an ``equinox.Module`` whose fields are its parameters (scalars or one
value per neuron, units in their names) and whose methods hold its equations, once. The
steppers of ``brainsim.sim`` drive it through four methods:

- :meth:`AbstractNeuron.prepare`: constants of a run that do not change step to step
  (propagators, parameters cast to the run's dtype, per-neuron refractory steps...);
- :meth:`AbstractNeuron.init_state`: the state of ``n_trials x n_neurons`` neurons at rest;
- :meth:`AbstractNeuron.advance`: one step of ``dt_ms`` given a :class:`NeuronInput`; returns
  the new state and, for a spiking model, which neurons spiked (with ``spike_fn``, a
  surrogate spike for gradients: ``brainsim.fit`` runs models through the same method);
- :meth:`AbstractNeuron.observe`: the state as named traces in physical units (what
  ``[record]`` writes, and the voltage that graded synapses and gap junctions read).

``spiking`` says whether the model emits spikes (and so can drive delayed event synapses);
``inputs`` names the :class:`NeuronInput` channels it takes; ``shortcuts`` names the
exact-solution methods that the fast steppers look for (LIF: ``"exact_jump"`` and
``"reach_bound"``, used by the windowed steppers); a stepper that needs one refuses a model
without it. A new model is one file with one such class and an entry in
``brainsim.models.MODELS`` (see docs/ARCHITECTURE.md, where PQN is the worked example).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class NeuronInput(eqx.Module):
    """What reaches the neurons in one step; every field is [trials, neurons] or 0.

    Attributes:
        current: external and electrical drive, in the units of the model's voltage
            equation (mV for LIF and the graded model: a current times the membrane
            resistance), held constant over the step.
        arrivals: weighted synaptic events of delayed event synapses arriving this step
            (mV of the model's synaptic variable).
        events: the number of input events (Poisson or replayed) due this step.
        gap: ``sum_j w_gap n_ij v_j`` (mV) over the neuron's gap junctions, from the
            voltages at the step's start; the model adds its own ``- w_gap n_i v_i`` (it
            knows ``n_i`` from ``prepare``) and may integrate that part implicitly.
    """

    current: Float[Array, "trials neurons"] | float = 0.0
    arrivals: Float[Array, "trials neurons"] | float = 0.0
    events: Float[Array, "trials neurons"] | float = 0.0
    gap: Float[Array, "trials neurons"] | float = 0.0


class AbstractNeuron(eqx.Module):
    """A neuron model: its parameters, state and equations (see the module docstring)."""

    kind: ClassVar[str]
    spiking: ClassVar[bool]
    inputs: ClassVar[frozenset[str]]
    shortcuts: ClassVar[frozenset[str]] = frozenset()
    # the names :meth:`observe` returns, in order; the first is the coupling voltage
    trace_names: ClassVar[tuple[str, ...]]
    # [model] keys that name a choice rather than a number, with their options
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    dt_ms: eqx.AbstractVar[float]

    @abc.abstractmethod
    def prepare(self, n_neurons: int, dtype, *, no_refractory=None, gap_conductance=None) -> Any:
        """Per-run constants (a PyTree) for :meth:`advance`. ``no_refractory``: bool
        [n_neurons], input neurons that the protocol exempts from refractoriness;
        ``gap_conductance``: float [n_neurons], ``sum_j n_ij`` over each neuron's gap
        junctions (None without them)."""

    @abc.abstractmethod
    def init_state(self, n_trials: int, n_neurons: int, dtype) -> Any:
        """The state at rest (a PyTree of [n_trials, n_neurons] arrays)."""

    @abc.abstractmethod
    def advance(
        self, aux: Any, state: Any, inputs: NeuronInput, *, spike_fn=None
    ) -> tuple[Any, Bool[Array, "trials neurons"] | Float[Array, "trials neurons"] | None]:
        """One step of ``dt_ms``: ``(state, spiked)``; ``spiked`` is None for a graded
        model. ``spike_fn`` (spiking models; ``brainsim.fit``): a function of the spike
        condition's margin (e.g. ``v - v_th``) that is 0/1 in the forward pass with a
        surrogate derivative; ``spiked`` is then that float and the step is written so that
        gradients flow through it, with forward values identical to the plain step."""

    @abc.abstractmethod
    def observe(self, state: Any) -> dict[str, Float[Array, "trials neurons"]]:
        """Named traces in physical units, keys :attr:`trace_names`."""

    def voltage(self, state: Any) -> Float[Array, "trials neurons"]:
        """The membrane voltage (mV) that gap junctions and graded synapses read."""
        return self.observe(state)[self.trace_names[0]]

    def time_constant_ms(self):
        """The voltage equation's time constant (ms; scalar or per neuron): the scale of
        a surrogate spike's gradient in ``brainsim.fit`` (``dt / tau``)."""
        return self.tau_ms

    def synapse_weight(self):
        """Weight per synapse (scalar or per presynaptic neuron), times the signed count:
        a connection's weight in the units of the channel its synapses write."""
        return self.w_syn

    def output(self, state: Any) -> Float[Array, "trials neurons"]:
        """What a graded model's chemical synapses transmit (its transfer function of the
        voltage); spiking models transmit spikes instead."""
        raise NotImplementedError(f"{type(self).__name__} transmits spikes, not a graded output")

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The ``[model]`` keys of this kind: its parameter fields (``dt_ms`` comes from
        ``[simulation]``)."""
        import dataclasses

        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "dt_ms")

    def parameters(self) -> dict:
        """Field values as plain Python (scalars, lists): what the manifest records."""
        import dataclasses

        import numpy as np

        out = {}
        for f in dataclasses.fields(self):
            a = np.asarray(getattr(self, f.name))
            out[f.name] = a.item() if a.ndim == 0 else a.tolist()
        return out


def per_neuron(x, n: int, dtype) -> Float[Array, " neurons"]:
    """A scalar or per-neuron parameter as a [n] array of ``dtype``."""
    return jnp.broadcast_to(jnp.asarray(x, dtype), (n,))
