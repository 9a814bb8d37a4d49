"""Initial neuron state shared by the steppers."""

from __future__ import annotations

import jax.numpy as jnp

from brainsim.models import LIF, SINCE_MAX


def initial_neurons(model: LIF, n_trials: int, n_neurons: int, dtype, *, deviation: bool = True):
    """At rest, g = 0, never spiked: the reference model's initial condition. With
    ``deviation`` the voltage is held as ``u = v - v_0`` (0 at rest), the engine's form."""
    rest = 0.0 if deviation else model.v_0_mv
    v = jnp.broadcast_to(jnp.asarray(rest, dtype), (n_trials, n_neurons))
    g = jnp.zeros((n_trials, n_neurons), dtype)
    since = jnp.full((n_trials, n_neurons), SINCE_MAX, jnp.int32)
    return jnp.array(v), g, since
