"""Per-neuron parameter access shared by the steppers."""

from __future__ import annotations

import jax.numpy as jnp

from brainsim.models import LIF


def at(x, idx):
    """``x`` itself when scalar, else ``x[idx]`` (a per-neuron parameter gathered)."""
    x = jnp.asarray(x)
    return x if x.ndim == 0 else x[idx]


def neuron_params(model: LIF, dtype, idx=None):
    """The LIF step's per-neuron keyword parameters, cast to ``dtype`` and, with ``idx``,
    gathered at those neuron indices."""
    names = {
        "v_0": "v_0_mv",
        "v_th": "v_th_mv",
        "v_reset": "v_reset_mv",
        "w_syn": "w_syn_mv",
        "f_poi": "f_poi",
    }
    out = {}
    for k, field in names.items():
        x = jnp.asarray(getattr(model, field), dtype)
        out[k] = x if idx is None else at(x, idx)
    return out


def propagators(model: LIF, n_steps, dtype, idx=None):
    return model.propagators(n_steps, dtype, idx)
