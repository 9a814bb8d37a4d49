"""The engine's two conversions, in one place: simulated time to integer steps, and a
``precision`` name to its dtype."""

from __future__ import annotations

import jax.numpy as jnp

PRECISIONS = {"float32": jnp.float32, "float64": jnp.float64}


def n_steps_of(duration_ms: float, dt_ms: float) -> int:
    """Steps of ``dt_ms`` in ``duration_ms`` (rounded: 1000 ms of 0.1 ms is 10000)."""
    return int(round(duration_ms / dt_ms))


def dtype_of(precision: str):
    """``"float32"`` or ``"float64"`` -> the JAX dtype; anything else is a ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def to_device(x, dtype=None):
    """A host value as a device array of ``dtype``, converted on the host and transferred
    with ``jax.device_put``: ``jnp.asarray`` of a numpy array compiles a small XLA program
    per shape and dtype (10-30 ms each, paid again by every fresh process)."""
    import jax
    import numpy as np

    return jax.device_put(np.asarray(x, None if dtype is None else np.dtype(dtype)))
