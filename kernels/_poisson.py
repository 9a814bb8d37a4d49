"""Poisson input events, reproducible per trial and absolute step: two versioned streams.

Steps are grouped in blocks of ``block_steps`` (the engine uses the synaptic delay in steps,
its window). Every stream keys a trial's events by its global trial number and the block
(never by batch, chunk or device), so a run gives the same input whatever its chunking, its
budgets, its kernel, how its trials are batched or which device holds them.

Both streams have the law of Brian2's ``PoissonInput(N=1)``: each (trial, input, step) has
an event with probability ``p = rate x dt``, independently. They differ in how the random
numbers are drawn, so the same seed gives different (equally distributed) events:

- **stream 1** (brainsim up to 0.1.0's default): one ``jax.random.uniform`` per (step,
  trial, input), from ``fold_in(fold_in(key, trial), block)``; compared with ``p`` in
  float32. Its cost is one random number per input and step.
- **stream 2** (the default): per (trial, input, block), the events are drawn as geometric
  gaps between events, so a block without events (most of them: at 10 Hz a 1.8 ms block
  holds one with probability 1.8%) costs one Threefry-2x32 call instead of 18 uniforms.
  The gap before the next event, counted from step ``s`` of the block, is ``G = #{k : u >=
  T_k}`` for a 32-bit uniform ``u``, with ``T_k = floor(2**32 (1 - (1 - p)**(k + 1)))``,
  the probability of an event within ``k + 1`` steps, computed on the host in float64
  (:func:`window_thresholds`): ``P(G = g) = p (1 - p)**g``, the gap law of independent
  Bernoulli steps. An event falls at step ``s + G`` if that is still in the block; the
  next gap is drawn from there (``s + G + 1``). The uniforms come in pairs ``(a, b) =
  threefry2x32(k[trial, j], (neuron, block))`` for draws ``j = 0, 1, ...`` (``a`` first),
  with ``k[trial, j] = threefry2x32(key, (trial, STREAM2_TAG + j))`` (:func:`stream_keys`);
  ``neuron`` is the input's neuron index, so a neuron's input does not depend on which
  other neurons are driven. The native CPU kernels draw the same numbers from the same
  keys and thresholds (``native/dense_lif.cc``), and tests hold the two equal.

Drawing a block at once matters on CPUs: each draw is a small XLA loop whose fixed cost
(tens of microseconds) dwarfs the few hundred numbers of one step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, UInt32

STREAMS = (1, 2)
DEFAULT_STREAM = 2
# second counter word of the per-(trial, draw) keys of stream 2: keeps them apart from other
# uses of the run's key, which fold in small numbers
STREAM2_TAG = 0x5EED0000
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011; the block function of JAX's
    default PRNG): the 32-bit words ``(y0, y1)`` of counter ``(x0, x1)`` under key ``(k0,
    k1)``; uint32 arrays that broadcast together."""
    u32 = jnp.uint32
    k0, k1, x0, x1 = (jnp.asarray(a, u32) for a in (k0, k1, x0, x1))
    ks = (k0, k1, k0 ^ k1 ^ u32(0x1BD11BDA))
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << u32(r)) | (x1 >> u32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + u32(i + 1)
    return x0, x1


def key_words(key: Array) -> tuple[Array, Array]:
    """The two uint32 words of a run's PRNG key (a raw ``PRNGKey`` or a typed key)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.shape != (2,):  # another PRNG implementation: two words drawn from it
        key = jax.random.bits(key, (2,), jnp.uint32)
    key = key.astype(jnp.uint32)
    return key[0], key[1]


def draws_per_block(block_steps: int) -> int:
    """Draws (pairs of uniforms) that always suffice to fill a block: one gap per event and
    one past the block's end."""
    return block_steps // 2 + 1


def stream_keys(key: Array, trial_ids: Int[Array, " trials"], block_steps: int):
    """uint32 [trials, draws, 2]: stream 2's key of each trial and draw."""
    k0, k1 = key_words(key)
    j = jnp.arange(draws_per_block(block_steps), dtype=jnp.uint32) + jnp.uint32(STREAM2_TAG)
    y0, y1 = threefry2x32(k0, k1, trial_ids.astype(jnp.uint32)[:, None], j[None, :])
    return jnp.stack([y0, y1], axis=-1)


def window_thresholds(
    rate_hz: np.ndarray, dt_ms: float, block_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stream 2's thresholds: ``(levels int32 [trials, inputs], table uint32 [L,
    block_steps])``; row ``levels[t, i]`` of ``table`` holds ``T_k`` for that input's rate
    (module docstring). Rates that are equal share a row; ``L`` is a power of two (rows past
    the distinct rates are zero), so that protocols with a few distinct rates share compiled
    programs. A rate of ``1 / dt`` or more has an event at every step (but with probability
    2**-32: thresholds are at most ``2**32 - 1``)."""
    rate = np.asarray(rate_hz, np.float64)
    values, inverse = np.unique(rate.reshape(-1), return_inverse=True)
    rows = max(1, 1 << max(0, int(values.size) - 1).bit_length())
    p = np.minimum(values * (dt_ms * 1e-3), 1.0)
    k = np.arange(1, block_steps + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_q = np.log1p(-p)  # -inf where p == 1
    within = np.where(p[:, None] >= 1.0, 1.0, -np.expm1(k[None, :] * log_q[:, None]))
    table = np.zeros((rows, block_steps), np.uint32)
    table[: values.size] = np.minimum(np.floor(within * 2.0**32), 2.0**32 - 1).astype(np.uint32)
    levels = inverse.reshape(rate.shape).astype(np.int32)
    return levels, table


# up to this many rows, the gap is counted against every row and the entry's row selected;
# above it, each entry's row is gathered once per block (gathers are slow per element on
# XLA's CPU backend: a binary search of 5 gathers per draw made a block 8x slower)
SELECT_ROWS = 8


def _gap_counter(levels, table):
    """A function ``u -> #{k : u >= T_k}`` in each entry's row of ``table`` (rows increase
    with k), for uniforms ``u`` shaped like ``levels``."""
    count = lambda u, row: jnp.sum(u[..., None] >= row, axis=-1, dtype=jnp.int32)  # noqa: E731
    if table.shape[0] == 1:  # one rate for every input
        return lambda u: count(u, table[0])
    if table.shape[0] <= SELECT_ROWS:

        def by_row(u):
            gap = jnp.zeros(u.shape, jnp.int32)
            for r in range(table.shape[0]):
                gap = jnp.where(levels == r, count(u, table[r]), gap)
            return gap

        return by_row
    rows = table[levels]  # [..., steps]
    return lambda u: count(u, rows)


def window_block(
    keys: UInt32[Array, "trials draws 2"],
    neurons: Int[Array, " inputs"],
    block: Int[Array, ""],
    levels: Int[Array, "trials inputs"],
    table: UInt32[Array, "levels steps"],
) -> Float[Array, "steps trials inputs"]:
    """Stream 2's 0/1 events for the steps of one block (module docstring)."""
    d = table.shape[1]
    words = -(-d // 32)
    n_draws = keys.shape[1]
    shape = levels.shape
    x0 = jnp.broadcast_to(neurons.astype(jnp.uint32)[None, :], shape)
    x1 = jnp.broadcast_to(block.astype(jnp.uint32), shape)
    gap = _gap_counter(levels, table)

    def place(pos, masks, u):
        # the next event after the gap, if it is still in the block; then the step after it
        pos = jnp.minimum(pos + gap(u), d)
        hit = pos < d
        bit = jnp.where(hit, jnp.uint32(1) << (pos % 32).astype(jnp.uint32), jnp.uint32(0))
        masks = tuple(m | jnp.where(pos // 32 == w, bit, 0) for w, m in enumerate(masks))
        return jnp.where(hit, pos + 1, d), masks

    def draw(carry):
        j, pos, masks = carry
        k = keys[:, j]
        a, b = threefry2x32(k[:, 0, None], k[:, 1, None], x0, x1)
        pos, masks = place(pos, masks, a)
        pos, masks = place(pos, masks, b)
        return j + 1, pos, masks

    def more(carry):
        j, pos, _ = carry
        return (j < n_draws) & jnp.any(pos < d)

    masks0 = tuple(jnp.zeros(shape, jnp.uint32) for _ in range(words))
    _, _, masks = jax.lax.while_loop(
        more, draw, (jnp.int32(0), jnp.zeros(shape, jnp.int32), masks0)
    )
    k = jnp.arange(d, dtype=jnp.uint32)
    word = jnp.stack(masks)[k // 32]  # [steps, trials, inputs]
    return ((word >> (k % 32)[:, None, None]) & 1).astype(jnp.float32)


def poisson_block(
    key: Array,
    trial_ids: Int[Array, " trials"],
    block: Int[Array, ""],
    rate_hz: Float[Array, "trials inputs"],
    dt_ms: float,
    block_steps: int,
) -> Float[Array, "steps trials inputs"]:
    """Stream 1's 0/1 events for the ``block_steps`` steps of one block: Bernoulli(rate x
    dt) per (step, trial, input), as Brian2's ``PoissonInput`` with N=1 draws them."""

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
    """Stream 1's events of one absolute ``step``: its row of :func:`poisson_block`."""
    block = poisson_block(key, trial_ids, step // block_steps, rate_hz, dt_ms, block_steps)
    return block[step % block_steps]
