"""Per-neuron parameter access shared by the steppers."""

from __future__ import annotations

import jax.numpy as jnp

from brainsim.models import LIF


def at(x, idx):
    """``x`` itself when scalar, else ``x[idx]`` (a per-neuron parameter gathered)."""
    x = jnp.asarray(x)
    return x if x.ndim == 0 else x[idx]


def neuron_params(model: LIF, dtype, idx=None, *, deviation: bool = True):
    """The LIF step's per-neuron keyword parameters, cast to ``dtype`` and, with ``idx``,
    gathered at those neuron indices.

    With ``deviation`` (the engine's choice) voltages are measured from rest: ``v_0`` is 0
    and ``v_th``, ``v_reset`` are shifted by ``-v_0``, so the state holds ``u = v - v_0``.
    Near -50 mV a float32 has a resolution of 3.8 uV, near 0 far finer: in float32 this
    keeps threshold crossings where float64 (and Brian2) puts them."""
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
    if deviation:
        out["v_th"] = out["v_th"] - out["v_0"]
        out["v_reset"] = out["v_reset"] - out["v_0"]
        out["v_0"] = jnp.zeros_like(out["v_0"])
    return out


def propagators(model: LIF, n_steps, dtype, idx=None):
    return model.propagators(n_steps, dtype, idx)
