"""What one compiled chunk of the windowed steppers returns, as named PyTrees."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


class KernelCounts(eqx.Module):
    """True sizes each window needed (compare with :class:`Budgets`, same names): active
    and stepped neurons, spikes, synaptic events, awake neurons; each [..., windows]."""

    active: Int[Array, "... windows"]
    stepped: Int[Array, "... windows"]
    spikes: Int[Array, "... windows"]
    events: Int[Array, "... windows"]
    awake: Int[Array, "... windows"]

    @classmethod
    def from_stacked(cls, counts) -> KernelCounts:
        """From [..., windows, 5] in the field order (how the scan bodies emit them)."""
        return cls(*(counts[..., i] for i in range(5)))

    def peak(self, windows: int | None = None) -> np.ndarray:
        """int64 [5]: each count's largest value over windows (the first ``windows`` only,
        when given: a padded chunk's extra windows size nothing) and shards, field order."""
        from brainsim.sim._sharding import to_host

        return np.array(
            [
                int(np.max(to_host(getattr(self, f))[..., :windows]))
                for f in KernelCounts.__annotations__
            ]
        )


class ChunkOutput(eqx.Module):
    """One chunk of windows.

    Attributes:
        state: the stepper's state after the chunk.
        spike_flat: [..., windows, S] spikes as ``trial x n + neuron`` (``trials x n``:
            padding), ordered by step, trial, neuron; a leading shard axis when sharded.
        spike_step: [..., windows, S] each spike's step within its window.
        counts: :class:`KernelCounts`.
        traces: trace name -> [windows, delay, trials, recorded].
        nonfinite: [windows] rows of the state each window wrote NaN or infinite, where
            the stepper counts them (the native chunk of the windowed stepper; else None:
            the state is scanned).
    """

    state: Any
    spike_flat: Int[Array, "... windows spikes"]
    spike_step: Int[Array, "... windows spikes"]
    counts: KernelCounts
    traces: dict[str, Float[Array, "windows delay trials recorded"]]
    nonfinite: Int[Array, " windows"] | None = None


def windowed_traces(u_rec, g_rec, v_0) -> dict:
    """The windowed stepper's records (it holds ``u = v - v_0``) as traces in mV."""
    return {"v_mv": u_rec + jnp.asarray(v_0, u_rec.dtype), "g_mv": g_rec}
