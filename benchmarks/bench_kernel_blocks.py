"""Building blocks of the windowed kernel against the plain JAX forms they replace.

Each pair does the same work at the sizes of the whole-brain sugar workload (30 trials:
~131k active entries and synaptic events per window, 4.2M (trial, neuron) entries) and is
timed in the same process, compiled, looping inside one jit so that dispatch is not counted:

- scatter with ``mode="drop"`` vs ``mode="clip"`` into a trash region (``scatter_to``);
- padding written to one trash slot vs spread over a trash region;
- ``jnp.nonzero(size=...)`` vs ``compact`` (running sum + scatter);
- ``searchsorted`` row expansion vs the running-sum ``expand_rows``;
- Poisson input drawn step by step vs once per 18-step window.

    python benchmarks/bench_kernel_blocks.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
from brainsim.kernels import (
    compact,
    expand_rows,
    poisson_block,
    stream_keys,
    window_block,
    window_thresholds,
)

from brainsim.bench._common import environment

E = 131_072  # list entries per window
N = 4_177_650  # trials x neurons (30 x 139,255)
REPS = 40


def timed(fn) -> float:
    """Seconds per call of ``fn(i)`` (i: a traced loop counter), looped inside one jit."""

    def body(c, _):
        out = fn(c)
        return c + 1, jnp.sum(out.astype(jnp.float32))

    run = jax.jit(lambda: jax.lax.scan(body, 0, None, length=REPS))
    jax.block_until_ready(run())
    t = time.perf_counter()
    jax.block_until_ready(run())
    return (time.perf_counter() - t) / REPS


def pairs():
    rng = np.random.default_rng(0)
    live = rng.random(2 * E) < 0.4
    dest = jnp.asarray(np.where(live, rng.integers(0, E, 2 * E), E), jnp.int32)
    vals = jnp.arange(2 * E, dtype=jnp.int32)
    few = rng.random(E) < 0.06
    one_slot = jnp.asarray(np.where(few, rng.integers(0, E, E), E), jnp.int32)
    spread = jnp.asarray(np.where(few, rng.integers(0, E, E), E + np.arange(E) % 1024), jnp.int32)
    w = jnp.asarray(rng.random(E), jnp.float32)
    mask = jnp.asarray(live)
    deg = rng.integers(1, 240, 2048)
    indptr = jnp.asarray(np.concatenate([[0], np.cumsum(deg)]), jnp.int32)
    rows = jnp.arange(2048, dtype=jnp.int32)
    valid = rows < 860

    def searchsorted_rows(c):
        d = jnp.where(valid, indptr[rows + 1] - indptr[rows], 0) + (c % 2)
        cum = jnp.cumsum(d)
        return jnp.searchsorted(cum, jnp.arange(E), side="right")

    key = jax.random.PRNGKey(0)
    trials = jnp.arange(30, dtype=jnp.int32)
    rate = jnp.full((30, 21), 150.0, jnp.float32)

    # the dense-activity workload's inputs: every neuron of 20,000, 4 trials
    dense_rate = jnp.full((4, 20_000), 10.0, jnp.float32)
    dense_in = jnp.arange(20_000, dtype=jnp.int32)
    dense_keys = stream_keys(key, trials[:4], 18)
    dense_levels = tuple(map(jnp.asarray, window_thresholds(np.asarray(dense_rate), 0.1, 18)))

    # the previous engine: one draw (fold_in, uniform) per step and trial
    def per_step_old(c):
        def one(k):
            def trial(t):
                kk = jax.random.fold_in(jax.random.fold_in(key, t), c * 18 + k)
                return jax.random.uniform(kk, (21,))

            return jax.vmap(trial)(trials) < 0.015

        return jax.lax.map(one, jnp.arange(18))

    return [
        (
            "scatter 262k entries (40% live) into 131k",
            lambda c: jnp.zeros(E, jnp.int32).at[dest + c % 2].set(vals, mode="drop"),
            lambda c: jnp.zeros(E + 1, jnp.int32).at[dest + c % 2].set(vals, mode="clip"),
            "mode=drop",
            "mode=clip, trash slot",
        ),
        (
            "scatter-add 131k events, 94% padding",
            lambda c: jnp.zeros(E + 1, jnp.float32).at[one_slot].add(w * c, mode="clip"),
            lambda c: jnp.zeros(E + 1024, jnp.float32).at[spread].add(w * c, mode="clip"),
            "one trash slot",
            "trash region",
        ),
        (
            "compact 262k flags into 131k positions",
            lambda c: jnp.nonzero(mask ^ (c > 5), size=E, fill_value=2 * E)[0],
            lambda c: compact(mask ^ (c > 5), E)[0],
            "jnp.nonzero(size=)",
            "compact (cumsum)",
        ),
        (
            "expand 860 CSR rows into 131k slots",
            searchsorted_rows,
            lambda c: expand_rows(rows, valid, indptr + (c % 2), E)[1],
            "searchsorted",
            "expand_rows (cumsum)",
        ),
        (
            "Poisson input, 30 trials x 21 inputs x 18 steps",
            per_step_old,
            lambda c: poisson_block(key, trials, c, rate, 0.1, 18),
            "drawn per step",
            "drawn per window",
        ),
        (
            "Poisson input, 4 trials x 20,000 inputs at 10 Hz x 18 steps",
            lambda c: poisson_block(key, trials[:4], c, dense_rate, 0.1, 18),
            lambda c: window_block(dense_keys, dense_in, c, *dense_levels),
            "stream 1 (a uniform per step)",
            "stream 2 (geometric gaps)",
        ),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    env = environment()
    for what, old, new, old_name, new_name in pairs():
        t_old, t_new = timed(old), timed(new)
        rec = {
            "workload": "kernel_blocks",
            "what": what,
            "plain": old_name,
            "used": new_name,
            "plain_ms": t_old * 1e3,
            "used_ms": t_new * 1e3,
            "speedup": t_old / t_new,
            **env,
        }
        if args.json:
            print(json.dumps(rec))
        else:
            print(
                f"{what:50s} {old_name:>20s} {t_old * 1e3:7.3f} ms   "
                f"{new_name:>22s} {t_new * 1e3:7.3f} ms   {t_old / t_new:5.1f}x"
            )


if __name__ == "__main__":
    main()
