"""A graded (non-spiking) neuron: the membrane equation of flyvis (Lappalainen et al.,
Nature 2024, ``PPNeuronIGRSynapses``) and of graded C. elegans models::

    tau_i dV_i/dt = -V_i + V_rest_i + sum_j w_ij f(V_j) + x_i(t)

``f`` is the transfer function of the presynaptic voltage (relu by default, as flyvis),
``w_ij`` the signed synapse count times ``w_syn`` (a gain per synapse, dimensionless), and
``x_i`` the external drive (mV). With gap junctions the right side also has ``w_gap sum_j
n_ij (V_j - V_i)``. Two integrators: ``"euler"`` (explicit, as flyvis: ``V += dt / tau x
(rhs)``) and ``"exact"`` (the exact solution with the input held over the step, ``V += (V_inf
- V) (1 - exp(-dt (1 + w_gap n_i) / tau))``: stable for any dt).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from brainsim.models._base import AbstractNeuron, NeuronInput
from brainsim.models._synapses import TRANSFERS

INTEGRATORS = ("euler", "exact")


def propagator(integrator: str, dt_ms, tau, leak, xp=np):
    """``GradedAux.decay``: ``dt / tau`` (euler) or ``1 - exp(-dt leak / tau)`` (exact);
    ``xp`` is numpy (a run's host-side set-up) or jax.numpy (fitted time constants)."""
    if integrator == "euler":
        return dt_ms / tau
    return -xp.expm1(-dt_ms * leak / tau)


class GradedState(eqx.Module):
    v: Float[Array, "trials neurons"]


class GradedAux(eqx.Module):
    tau: Float[Array, " neurons"]
    v_rest: Float[Array, " neurons"]
    leak: Float[Array, " neurons"]  # 1 + w_gap x junctions
    decay: Float[Array, " neurons"]  # euler: dt / tau; exact: 1 - exp(-dt leak / tau)


class Graded(AbstractNeuron):
    """Graded neuron parameters; ``tau_ms`` and ``v_rest_mv`` scalar or per neuron.

    The defaults are neutral values, not published ones (flyvis fits them per cell type,
    see the flyvis loader): tau 10 ms, rest 0 mV, a gain of 0.01 per synapse, no gap
    coupling unless ``w_gap`` is given."""

    kind: ClassVar[str] = "graded"
    spiking: ClassVar[bool] = False
    inputs: ClassVar[frozenset[str]] = frozenset({"current", "gap"})
    trace_names: ClassVar[tuple[str, ...]] = ("v_mv",)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "transfer": tuple(TRANSFERS),
        "integrator": INTEGRATORS,
    }

    tau_ms: float | ArrayLike = 10.0
    v_rest_mv: float | ArrayLike = 0.0
    w_syn: float | ArrayLike = 0.01
    w_gap: float = eqx.field(static=True, default=0.0)
    transfer: str = eqx.field(static=True, default="relu")
    integrator: str = eqx.field(static=True, default="exact")
    dt_ms: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        if not (self.dt_ms > 0 and np.isfinite(self.dt_ms)):
            raise ValueError(f"dt_ms must be a positive number, got {self.dt_ms}")
        tau = np.asarray(self.tau_ms, np.float64)
        if not np.all(np.isfinite(tau) & (tau > 0)):
            raise ValueError(f"tau_ms must be finite and > 0, got {self.tau_ms}")
        if not np.all(np.isfinite(np.asarray(self.v_rest_mv, np.float64))):
            raise ValueError("v_rest_mv must be finite")
        if not np.all(np.isfinite(np.asarray(self.w_syn, np.float64))):
            raise ValueError("w_syn must be finite")
        if not (np.isfinite(self.w_gap) and self.w_gap >= 0):
            raise ValueError(f"w_gap must be a finite number >= 0, got {self.w_gap}")
        if self.transfer not in TRANSFERS:
            raise ValueError(f"transfer must be one of {sorted(TRANSFERS)}, got {self.transfer!r}")
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {INTEGRATORS}, got {self.integrator!r}")

    def prepare(self, n_neurons, dtype, *, no_refractory=None, gap_conductance=None):
        tau = np.broadcast_to(np.asarray(self.tau_ms, np.float64), (n_neurons,))
        n_gap = 0.0 if gap_conductance is None else np.asarray(gap_conductance, np.float64)
        leak = 1.0 + self.w_gap * np.broadcast_to(n_gap, (n_neurons,))
        decay = propagator(self.integrator, self.dt_ms, tau, leak, np)
        if self.integrator == "euler":
            worst = float(np.max(decay * leak)) if n_neurons else 0.0
            # at exactly 1 the voltage follows its input at once (flyvis clamps tau at dt)
            if worst > 1.0:
                raise ValueError(
                    f"explicit Euler is unstable here: dt_ms x (1 + w_gap n_i) / tau_ms reaches "
                    f'{worst:.3g} (> 1); lower dt_ms or use integrator = "exact"'
                )
        v_rest = np.broadcast_to(np.asarray(self.v_rest_mv, np.float64), (n_neurons,))
        return GradedAux(*(jnp.asarray(x, dtype) for x in (tau, v_rest, leak, decay)))

    def init_state(self, n_trials, n_neurons, dtype) -> GradedState:
        """At rest: ``V = V_rest`` (the fixed point without input)."""
        v = jnp.broadcast_to(jnp.asarray(self.v_rest_mv, dtype), (n_neurons,))
        return GradedState(jnp.tile(v, (n_trials, 1)))

    def advance(self, aux: GradedAux, state: GradedState, inputs: NeuronInput, *, spike_fn=None):
        """One step of the chosen integrator (a graded model emits no spikes: ``spike_fn``
        is not used)."""
        v = state.v
        drive = aux.v_rest + inputs.current + inputs.gap
        if self.integrator == "euler":
            v = v + aux.decay * (drive - aux.leak * v)
        else:
            v = v + (drive / aux.leak - v) * aux.decay
        return GradedState(v), None

    def observe(self, state: GradedState) -> dict:
        return {"v_mv": state.v}

    def output(self, state: GradedState):
        return TRANSFERS[self.transfer](state.v)
