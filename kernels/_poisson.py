"""Poisson input events, reproducible per trial and absolute step.

The events of trial ``t`` at step ``s`` come from ``fold_in(fold_in(key, t), s)``, so a run
gives the same input whatever its chunking, its budgets, its kernel, how its trials are
batched or which device holds them: the reference and the fast path see the same events,
and a sharded run equals a single-device one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def poisson_events(
    key: Array,
    trial_ids: Int[Array, " trials"],
    step: Int[Array, ""],
    rate_hz: Float[Array, "trials inputs"],
    dt_ms: float,
) -> Float[Array, "trials inputs"]:
    """0/1 events for one step: Bernoulli(rate x dt) per (trial, input), as Brian2's
    ``PoissonInput`` with N=1 draws them."""

    def one_trial(t, rate):
        k = jax.random.fold_in(jax.random.fold_in(key, t), step)
        return jax.random.uniform(k, rate.shape, dtype=jnp.float32)

    u = jax.vmap(one_trial)(trial_ids, rate_hz)
    return (u < rate_hz.astype(jnp.float32) * (dt_ms * 1e-3)).astype(rate_hz.dtype)
