"""Per-neuron parameter access shared by the LIF steppers (the parameters' one home is
:class:`brainsim.models.LIF`)."""

from __future__ import annotations

import jax.numpy as jnp

from brainsim.models import LIF


def at(x, idx):
    """``x`` itself when scalar, else ``x[idx]`` (a per-neuron parameter gathered)."""
    x = jnp.asarray(x)
    return x if x.ndim == 0 else x[idx]


def neuron_params(model: LIF, dtype, idx=None, *, deviation: bool = True):
    """:meth:`LIF.step_params`: the step's keyword parameters (see there)."""
    return model.step_params(dtype, idx, deviation=deviation)


def propagators(model: LIF, n_steps, dtype, idx=None):
    return model.propagators(n_steps, dtype, idx)
