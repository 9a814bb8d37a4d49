"""Poisson input events, reproducible per absolute step.

Each step's events come from ``fold_in(key, step)``, so a run gives the same input whatever
its chunking, its budgets or its kernel: the reference and the fast path see the same
events.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def poisson_events(
    key: Array, step: Int[Array, ""], rate_hz: Float[Array, "trials inputs"], dt_ms: float
) -> Float[Array, "trials inputs"]:
    """0/1 events for one step: Bernoulli(rate x dt) per (trial, input), as Brian2's
    ``PoissonInput`` with N=1 draws them."""
    u = jax.random.uniform(jax.random.fold_in(key, step), rate_hz.shape, dtype=jnp.float32)
    return (u < rate_hz.astype(jnp.float32) * (dt_ms * 1e-3)).astype(rate_hz.dtype)
