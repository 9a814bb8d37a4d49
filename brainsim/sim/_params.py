"""Per-neuron parameter access shared by the LIF steppers (the parameters' one home is
:class:`brainsim.models.LIF`)."""

from __future__ import annotations

import jax.numpy as jnp

from brainsim.models import LIF, per_neuron


def at(x, idx):
    """``x`` itself when scalar, else ``x[idx]`` (a per-neuron parameter gathered)."""
    x = jnp.asarray(x)
    return x if x.ndim == 0 else x[idx]


def neuron_params(model: LIF, dtype, idx=None, *, deviation: bool = True):
    """:meth:`LIF.step_params`: the step's keyword parameters (see there)."""
    return model.step_params(dtype, idx, deviation=deviation)


def propagators(model: LIF, n_steps, dtype, idx=None):
    return model.propagators(n_steps, dtype, idx)


def native_neuron_consts(p: dict, n: int, dtype):
    """[3, n] ``(v_th, v_reset, input kick)`` of the native LIF chunks, from the step's
    parameters ``p`` (:func:`neuron_params`: voltages from rest); the kick is
    ``f_poi x w_syn``, formed as :meth:`LIF.step` forms it."""
    kick = per_neuron(p["f_poi"] * p["w_syn"], n, dtype)
    return jnp.stack([per_neuron(p["v_th"], n, dtype), per_neuron(p["v_reset"], n, dtype), kick])
