"""Losses over the spikes and rates of a differentiable run.

Rates: a :class:`RateTargets` table (condition, neuron, target rate) compared with the
model's mean rate per condition (mean squared error, Hz^2). Perturbation responses are the
same table on other conditions (an activation or a silencing; see :mod:`brainsim.fit._task`).
Timing: :func:`first_crossing_ms`, the time at which the membrane first crosses threshold,
interpolated between steps, so that it is a differentiable function of the potentials.
Regularisation toward the connectome's prior is :meth:`FitParams.penalty`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


class RateTargets(eqx.Module):
    """Target rates: row i asks neuron ``neuron[i]`` to fire at ``rate_hz[i]`` in condition
    ``condition[i]`` (internal indices)."""

    condition: Int[Array, " rows"]
    neuron: Int[Array, " rows"]
    rate_hz: Float[Array, " rows"]

    @classmethod
    def from_arrays(cls, condition, neuron, rate_hz, dtype=jnp.float32) -> RateTargets:
        neuron = np.asarray(neuron, np.int32).reshape(-1)
        condition = np.broadcast_to(np.asarray(condition, np.int32), neuron.shape)
        rate = np.broadcast_to(np.asarray(rate_hz, np.float64), neuron.shape)
        if not np.all(np.isfinite(rate)) or np.any(rate < 0):
            raise ValueError("target rates must be finite and >= 0 Hz")
        return cls(jnp.asarray(condition), jnp.asarray(neuron), jnp.asarray(rate, dtype))

    @property
    def n_rows(self) -> int:
        return int(self.neuron.shape[0])


def condition_rates(
    counts: Float[Array, "trials neurons"], n_conditions: int, duration_ms: float
) -> Float[Array, "conditions neurons"]:
    """Mean rate (Hz) per condition and neuron; condition c owns trials
    ``[c * T, (c + 1) * T)`` (as ``brainsim.experiments`` batches them)."""
    b, n = counts.shape
    if b % n_conditions:
        raise ValueError(f"{b} trials do not split into {n_conditions} conditions")
    per = counts.reshape(n_conditions, b // n_conditions, n).mean(axis=1)
    return per / (duration_ms * 1e-3)


def rate_loss(rates: Float[Array, "conditions neurons"], targets: RateTargets) -> Float[Array, ""]:
    """Mean squared error (Hz^2) between the model's rates and the targets; 0 without rows."""
    if targets.n_rows == 0:
        return jnp.zeros((), rates.dtype)
    model = rates[targets.condition, targets.neuron]
    return jnp.mean((model - targets.rate_hz.astype(rates.dtype)) ** 2)


def first_crossing_ms(
    margin: Float[Array, "steps ..."], margin_0: Float[Array, ...] | float, dt_ms: float
) -> Float[Array, ...]:
    """Time (ms) at which ``v - v_th`` first becomes positive, linearly interpolated between
    the two steps around the crossing: differentiable in the potentials, exact for a
    crossing at a step boundary and accurate to O(dt^2) otherwise.

    Args:
        margin: ``rec_margin`` of a :class:`DiffResult`: ``v - v_th`` after the
            integration of step k, i.e. at time ``(k + 1) dt``.
        margin_0: ``v - v_th`` at time 0 (``v_0 - v_th`` from rest).
    Returns:
        the crossing time, or ``nan`` where the membrane never crosses.
    """
    m0 = jnp.broadcast_to(jnp.asarray(margin_0, margin.dtype), margin.shape[1:])
    m = jnp.concatenate([m0[None], margin])  # m[j]: at time j dt
    above = m[1:] > 0
    k = jnp.argmax(above, axis=0)  # first step whose end is above threshold
    lo = jnp.take_along_axis(m, k[None], axis=0)[0]
    hi = jnp.take_along_axis(m, k[None] + 1, axis=0)[0]
    frac = lo / (lo - hi)
    return jnp.where(above.any(axis=0), (k + frac) * dt_ms, jnp.nan)


def van_rossum(
    spikes: Float[Array, "steps ..."],
    target: Float[Array, "steps ..."],
    tau_ms: float,
    dt_ms: float,
) -> Float[Array, ""]:
    """Van Rossum distance (squared, per ms) between spike trains: both are filtered with an
    exponential of ``tau_ms`` and compared step by step."""
    decay = float(np.exp(-dt_ms / tau_ms))
    diff = spikes - target.astype(spikes.dtype)

    def filt(trace, d):
        trace = decay * trace + d
        return trace, trace

    _, traces = jax.lax.scan(filt, jnp.zeros_like(diff[0]), diff)
    return jnp.sum(traces**2) * dt_ms / tau_ms
