"""Poisson input events, reproducible per trial and absolute step.

Steps are grouped in blocks of ``block_steps`` (the engine uses the synaptic delay in steps,
its window). The events of trial ``t`` in block ``j`` (steps ``[j B, (j + 1) B)``) come from
``fold_in(fold_in(key, t), j)``, so a run gives the same input whatever its chunking, its
budgets, its kernel, how its trials are batched or which device holds them: the reference
and the fast path see the same events, and a sharded run equals a single-device one.

Drawing a block at once matters on CPUs: each draw is a small XLA loop whose fixed cost
(tens of microseconds) dwarfs the few hundred numbers of one step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def poisson_block(
    key: Array,
    trial_ids: Int[Array, " trials"],
    block: Int[Array, ""],
    rate_hz: Float[Array, "trials inputs"],
    dt_ms: float,
    block_steps: int,
) -> Float[Array, "steps trials inputs"]:
    """0/1 events for the ``block_steps`` steps of one block: Bernoulli(rate x dt) per
    (step, trial, input), as Brian2's ``PoissonInput`` with N=1 draws them."""

    def one_trial(t):
        k = jax.random.fold_in(jax.random.fold_in(key, t), block)
        return jax.random.uniform(k, (block_steps, rate_hz.shape[1]), dtype=jnp.float32)

    u = jax.vmap(one_trial, out_axes=1)(trial_ids)
    p = rate_hz.astype(jnp.float32) * (dt_ms * 1e-3)
    return (u < p[None]).astype(rate_hz.dtype)


def poisson_events(
    key: Array,
    trial_ids: Int[Array, " trials"],
    step: Int[Array, ""],
    rate_hz: Float[Array, "trials inputs"],
    dt_ms: float,
    block_steps: int,
) -> Float[Array, "trials inputs"]:
    """The events of one absolute ``step``: its row of :func:`poisson_block`."""
    block = poisson_block(key, trial_ids, step // block_steps, rate_hz, dt_ms, block_steps)
    return block[step % block_steps]
